// Package hubspot verifies and parses the requests that HubSpot sends to
// hs2cc: a workflow's "Send a webhook" action, and Webhooks API (app
// subscription) deliveries.
//
// A Verifier checks HubSpot's request signatures: v3 (HMAC-SHA256 with a
// timestamp) when its headers are present, and otherwise, if policy allows,
// the older v2 and v1 hashes. It works on a framework-neutral Request so that
// the HTTP layer can hand over the raw body and the URI exactly as HubSpot
// signed them; any re-encoding breaks the signature.
//
// ParseWorkflow turns either workflow body style, the legacy contact profile
// sent by "Include all properties" or a flat customised body, into one
// Enrollment. Enrollment.ObjectKey and Enrollment.ContentHash give the dedupe
// key and version that HubSpot itself does not provide, since workflow
// deliveries carry no event id and are retried; Enrollment.SourceUpdatedAt
// says how recent the body's data is, so that a late retry can be told from
// a newer delivery.
//
// ParseWebhooksAPI reads a Webhooks API delivery, a JSON array of events,
// into Events; ParseWorkflow reports such a body as ErrWebhooksAPI. Event.Key
// identifies an event across HubSpot's retries, and Enrollment.SetProperty
// applies a contact.propertyChange to an enrollment the way a workflow body
// with the new value would have set it.
//
// Sign produces the headers HubSpot would send, for tests and for the
// simulate subcommand.
//
// The package uses only the standard library, so that it stays independent of
// the web framework and the storage layer that call it.
package hubspot

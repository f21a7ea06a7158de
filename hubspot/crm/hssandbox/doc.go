// Package hssandbox is an in-memory HubSpot CRM API for tests and
// `hs2cc dev`: the contact property and property-group endpoints, contact
// batch update and delete, private-app bearer auth, the secondly and daily
// rate limits with HubSpot's 429 body, and random 429s and 5xx in the style
// of ccclient/ccsandbox. Every contact id exists until it is deleted, as
// contacts are created by HubSpot users, not by hs2cc.
//
// HubSpot's answer to a batch naming deleted contacts is unconfirmed, so
// Options.Missing chooses between a 207 Multi-Status that updates the
// others (the default) and a refusal of the whole batch.
//
// Test hooks, without auth and not counted: GET /sandbox/contacts lists the
// contacts that were written, GET /sandbox/stats counts requests per
// endpoint and status, and POST /sandbox/faults {"fail_rate","throttle_rate"}
// changes the random faults.
package hssandbox

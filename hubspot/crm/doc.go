// Package crm is a small client for the parts of HubSpot's CRM API that
// hs2cc's write-back uses: batch updates of contact properties and the
// creation of the hs2cc property group and properties it writes.
//
// It lives under hubspot/ because it is HubSpot's other API; the hubspot
// package itself stays the stdlib webhook code. The client follows the shape
// of ccclient: a private base URL, an *http.Client with a timeout,
// newRequest and do, and a typed *APIError read from a size-limited body.
//
// Retry policy belongs to the caller. IsRateLimited tells it how long a 429
// asks it to wait and whether the daily limit (reset at midnight in the
// account's time zone) was the one hit. BatchUpdateContacts handles both
// readings of how HubSpot answers a batch naming deleted contacts (a 207
// with the found ones updated, or the whole batch refused with the missing
// ids named) and reports the missing ids apart from the updated ones.
//
// Error strings never contain the private app token.
package crm

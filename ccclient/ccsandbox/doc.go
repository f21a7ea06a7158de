// Package ccsandbox is an in-memory Constant Contact (CC) v3 account and
// OAuth server that tests and `hs2cc dev` talk to over HTTP, because CC
// itself cannot be reached from tests. It reproduces what the fact sheet
// (shared/facts/constant-contact-v3.md) says CC does, including the parts a
// client finds painful: single-use refresh tokens, 4 requests/s, a daily
// quota, a silently truncated 4 MB import, and imports that finish later and
// can still hold errors.
//
// A Server is an http.Handler laid out like CC, so a client configured with
// the API base http://HOST:PORT/v3 and the auth base
// http://HOST:PORT/oauth2/default/v1 works unchanged:
//
//	GET  /oauth2/default/v1/authorize          auto-approves; 302 with code and state
//	POST /oauth2/default/v1/token              authorization_code (+PKCE), refresh_token, device_code
//	POST /oauth2/default/v1/device/authorize   device codes, approved at once
//	GET  /v3/contact_lists, POST /v3/contact_lists
//	DELETE /v3/contact_lists/{list_id}         202; gone at once, where CC takes a while
//	GET  /v3/contact_custom_fields, POST /v3/contact_custom_fields
//	POST /v3/activities/contacts_json_import
//	GET  /v3/activities/{id}, GET /v3/activities
//	GET  /v3/contacts
//
// and, not part of CC, hooks for people and tests (they need no token and
// are not counted in Stats):
//
//	GET  /sandbox/contacts     every contact, sorted by email
//	GET  /sandbox/stats        request and error counters
//	POST /sandbox/unsubscribe  {"email": …}
//	POST /sandbox/lists        {"name": …}
//	POST /sandbox/custom_fields {"label": …}
//	GET|PUT /sandbox/faults    Faults (PUT replaces them all)
//	POST /sandbox/faults       changes only the Faults keys sent, e.g. {"fail_rate": 0.1}
//	GET|POST /sandbox/clock    {"advance": "25h"}
//	POST /sandbox/token        {"scope": …}
//
// Every /v3 call passes the gate CC's API gateway applies: a bearer token
// (401 with CC's exact body and WWW-Authenticate), the contact_data scope
// (403), then a per-client token bucket and daily quota that reset at 00:00
// UTC (429 throttled / quota_exceeded, no Retry-After). Polls count.
// Options.FailRate and ThrottleRate (or Faults at run time) add random 500s,
// 503s and throttled 429s, drawn from a source seeded by Options.Seed so a
// run can be repeated.
//
// Options.DropRate (Faults key drop_rate) loses answers: that share of the
// admitted /v3 calls is carried out in full (the import queued, the list
// created) and then the connection is closed before a byte of the answer
// is written, as when a timeout or a reset swallows CC's answer. The
// client sees EOF, and must find out from CC what became of the call, e.g.
// in GET /v3/activities. net/http's Transport itself resends an idempotent
// request (a GET) once when a reused connection closes unanswered, so a
// dropped GET may reach the sandbox twice; a POST is never resent. OAuth
// endpoints and /sandbox hooks are never dropped. Stats.Dropped counts them.
//
// Options.RejectRate (Faults key reject_rate) makes CC refuse that share of
// the rows of each import, row by row, drawn from the seeded source when the
// import is queued. The import still completes; a refused row creates or
// changes no contact and joins no list; status.error_count counts it while
// items_total_count still counts every row received; and activity_errors
// holds one string per refused row. CC's wording is unconfirmed (the spec
// only says strings), so Options.RejectDetail (Faults key reject_detail)
// picks one of three forms a client can be tested against:
//
//	line_email (default)  Line N: <email>: <message>
//	email                 <email>: <message>
//	count                 nothing in activity_errors, only error_count
//
// N is the row's 1-based position in import_data; <email> is the row's
// email, lower-cased as CC stores it (its sms_number for an SMS-only row),
// which never holds ": "; <message> is a sentence in the style of CC's
// validation messages, such as "The email address is not valid.", and
// names no reason a client should act on. Rows held as correctable are
// never refused this way; they keep counting in correctable_count.
// Stats.RowsRejected counts refused rows; Stats.ImportRows still counts
// every row that completed imports received.
//
// Imports are validated whole before they are queued (400 with CC's array
// body) and are processed lazily: an activity is initialized, then
// processing, then completed as the sandbox clock passes ActivityDelay, and
// its rows are applied the first time anything reads the account after
// that. With an injected clock nothing happens behind a test's back.
//
// Custom fields are CC's: POST /v3/contact_custom_fields {"label": "Agency
// ID", "type": "string"} creates the field named Agency_ID (the label with
// spaces replaced by underscores), and an import sets it as cf:Agency_ID.
// As in CC, a cf: key that names no field of the account (the label, say,
// or a field never created) is dropped without an error and the import
// still completes. GET /sandbox/contacts shows each contact's custom_fields
// as {"<name>": "<value>"}.
//
// Where the fact sheet marks CC's behaviour unconfirmed, Options has a knob
// and the default follows the sheet: list-name case, whether "" clears a
// field, client_secret_post, refresh-chain revocation on reuse, and the
// treatment of bodies over MaxImportBytes. Error keys other than
// unauthorized, throttled and quota_exceeded are the sandbox's own guesses.
//
// The package uses only the standard library. Its tests validate every
// exchange against CC's official Swagger file with the test-only package
// ccspec (kin-openapi), which the client and end-to-end tests use too.
package ccsandbox

// Package ccclient is a small client for the parts of the Constant Contact
// (CC) v3 API that hs2cc uses: the bulk JSON contact import, activity status,
// contact lists and a contact read-back for verification, plus the OAuth 2
// authorization-code flow (with PKCE) and refresh against CC's token server.
//
// The client follows the shape of google/go-github: a private base URL that
// relative paths resolve against, an *http.Client with a timeout, newRequest
// and do, and a typed *APIError read from a size-limited body. Error bodies
// are parsed tolerantly because CC uses three shapes: an array
// [{"error_key","error_message"}] (400, 404, 409, 415, 500), an object
// {"error_key","error_message"} (401, 429) and the OAuth shape
// {"error","error_description"} (token endpoint).
//
// Retry policy belongs to the caller, with one exception: after a 401, if
// the TokenSource also implements TokenInvalidator, the client invalidates
// the rejected token, fetches a new one and retries the call once. Request
// bodies are built from bytes so that the retry sends the same body.
//
// CC silently drops everything past the first 4 MB of an import body, so
// ImportContacts refuses, before sending, any request that is over
// MaxImportBytes or MaxImportContacts (ErrImportTooLarge) or that names no
// list or more than MaxImportListIDs lists (ErrInvalidImport).
//
// Error strings never contain the access token, the refresh token or the
// client secret; APIError.Error also leaves out the response body, which may
// echo contact data.
package ccclient

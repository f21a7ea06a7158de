package ccsandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// Stats counts what clients did to the sandbox, so tests can assert on
// request budgets and on how a client reacted to errors.
type Stats struct {
	// Requests counts calls by route pattern, such as
	// "POST /v3/activities/contacts_json_import", "GET /v3/activities/{id}"
	// or "POST /oauth2/default/v1/token", whatever their outcome. Calls to
	// routes the sandbox does not serve count under "unmatched"; the
	// /sandbox hooks are not counted.
	Requests map[string]int `json:"requests"`
	// Throttled and QuotaExceeded count the two API 429s by error_key.
	Throttled     int `json:"throttled"`
	QuotaExceeded int `json:"quota_exceeded"`
	// Imports counts accepted imports (201).
	Imports int `json:"imports"`
	// ImportRows counts the contacts (rows) received by every import that
	// completed, all imports together: a contact sent in two imports counts
	// twice, and a row CC held as correctable counts too, because it was
	// received. It is the sum of items_total_count over completed imports,
	// so rows past MaxImportBytes, which CC never reads, are not in it, nor
	// are the rows of imports that failed, timed out, were cancelled or are
	// not final yet. A test compares it with the rows a client sent to prove
	// that nothing was lost or sent twice. Rows CC refused (RowsRejected)
	// are in it too, because they were received.
	ImportRows int `json:"import_rows"`
	// RowsRejected counts the rows of completed imports that CC refused
	// row by row (Faults.RejectRate): received, in ImportRows and in their
	// activity's error_count, but applied to no contact and no list.
	RowsRejected int `json:"rows_rejected"`
	// ImportRowsDropped counts the rows of accepted imports that lay past
	// MaxImportBytes and were dropped without an error, as CC does with a
	// body over 4 MB. A client that keeps its bodies small leaves it at 0.
	ImportRowsDropped int `json:"import_rows_dropped"`
	// QueueFull counts imports refused because 1,000 were not final.
	QueueFull int `json:"queue_full"`
	// Unauthorized and Forbidden count API 401s and 403s.
	Unauthorized int `json:"unauthorized"`
	Forbidden    int `json:"forbidden"`
	// Faults counts injected 5xx answers, by route (Faults.Status) or random
	// (Faults.FailRate). Random 429s count in Throttled, like real ones.
	Faults int `json:"faults"`
	// Dropped counts API calls that were carried out but whose answer was
	// lost, the connection closed unanswered (Faults.DropRate). They are
	// not in Faults, since the call itself succeeded.
	Dropped int `json:"dropped"`
	// TokenGrants counts successful token grants by grant_type.
	TokenGrants map[string]int `json:"token_grants"`
	// InvalidGrant, InvalidClient and TokenThrottled count token-endpoint
	// refusals: invalid_grant, invalid_client and 429.
	InvalidGrant   int `json:"invalid_grant"`
	InvalidClient  int `json:"invalid_client"`
	TokenThrottled int `json:"token_throttled"`
}

// Stats returns a copy of the counters. It is the data of GET /sandbox/stats.
// It first settles the imports that are due on the sandbox clock, because
// they are applied lazily and ImportRows would otherwise lag behind a clock
// that moved while nobody polled.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(s.nowLocked())
	st := s.stats
	st.Requests = maps.Clone(s.stats.Requests)
	st.TokenGrants = maps.Clone(s.stats.TokenGrants)
	return st
}

// Faults are failures a test or `hs2cc dev` switches on to see how a client
// copes with what CC sometimes does.
type Faults struct {
	// ImportOutcome is the final state of imports queued while it is set:
	// "" or "completed" (normal), "failed", "timed_out", "cancelled", or
	// "stuck" (stays processing forever). Only completed imports change data.
	ImportOutcome string `json:"import_outcome,omitempty"`
	// Status maps a route pattern, as in Stats.Requests, to 500 or 503,
	// answered after the token, rate and quota checks pass.
	Status map[string]int `json:"status,omitempty"`
	// Limit, when "throttled" or "quota_exceeded", answers every API call
	// that passes the token check with that 429, whatever the buckets hold.
	Limit string `json:"limit,omitempty"`
	// FailRate is the chance (0 to 1) that an API call which passed the
	// token, quota and rate checks is answered 500 or 503 (each half the
	// time) in CC's array error body. Such a call costs quota. Routes with
	// a Status entry always get that status instead.
	FailRate float64 `json:"fail_rate,omitempty"`
	// ThrottleRate is the chance (0 to 1) that an API call within the daily
	// quota is answered with the same 429 throttled body the rate limiter
	// sends. Such a call costs no quota.
	ThrottleRate float64 `json:"throttle_rate,omitempty"`
	// RejectRate is the share (0 to 1) of the rows of each import queued
	// while it is set that CC refuses row by row: the import completes,
	// the refused rows change no contact and join no list, and each counts
	// in status.error_count and, per RejectDetail, in activity_errors.
	// Rows held as correctable are never drawn.
	RejectRate float64 `json:"reject_rate,omitempty"`
	// RejectDetail is how activity_errors names the refused rows of imports
	// queued while it is set: "line_email" ("" is the same), "email" or
	// "count"; see RejectDetailLineEmail.
	RejectDetail string `json:"reject_detail,omitempty"`
	// DropRate is the chance (0 to 1) that an API call which passed every
	// other check is carried out in full and then answered with a closed
	// connection and no response. Such a call costs quota.
	DropRate float64 `json:"drop_rate,omitempty"`
}

// validate reports a fault setting the sandbox cannot act on.
func (f Faults) validate() error {
	switch f.ImportOutcome {
	case "", stateCompleted, stateFailed, stateTimedOut, stateCancelled, outcomeStuck:
	default:
		return fmt.Errorf("ccsandbox: import outcome %q: want completed, failed, timed_out, cancelled or stuck", f.ImportOutcome)
	}
	for pattern, status := range f.Status {
		if status != http.StatusInternalServerError && status != http.StatusServiceUnavailable {
			return fmt.Errorf("ccsandbox: fault status %d for %q: want 500 or 503", status, pattern)
		}
	}
	switch f.Limit {
	case "", keyThrottled, keyQuotaExceeded:
	default:
		return fmt.Errorf("ccsandbox: fault limit %q: want throttled or quota_exceeded", f.Limit)
	}
	if err := validRejectDetail(f.RejectDetail); err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		p    float64
	}{{"fail_rate", f.FailRate}, {"throttle_rate", f.ThrottleRate}, {"reject_rate", f.RejectRate}, {"drop_rate", f.DropRate}} {
		if err := validRate(r.name, r.p); err != nil {
			return err
		}
	}
	return nil
}

// SetFaults replaces the active faults; the zero Faults turns them all off,
// including the random ones that Options.FailRate, ThrottleRate, RejectRate
// and DropRate started.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	f.Status = maps.Clone(f.Status)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

// hookContacts is GET /sandbox/contacts.
func (s *Server) hookContacts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Contacts []SandboxContact `json:"contacts"`
	}{s.Contacts()})
}

// hookStats is GET /sandbox/stats.
func (s *Server) hookStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// decodeHook reads a small JSON hook body into v, answering 400 on failure.
func decodeHook(w http.ResponseWriter, r *http.Request, v any) bool {
	body, tooBig, err := readBody(r, 1<<20)
	if err == nil && tooBig {
		err = fmt.Errorf("body over 1 MiB")
	}
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "ccsandbox: bad hook body: "+err.Error())
		return false
	}
	return true
}

// hookUnsubscribe is POST /sandbox/unsubscribe {"email": …}.
func (s *Server) hookUnsubscribe(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email string `json:"email"`
	}
	if !decodeHook(w, r, &in) {
		return
	}
	if in.Email == "" {
		writeError(w, http.StatusBadRequest, keyValidation, "ccsandbox: email is required")
		return
	}
	s.Unsubscribe(in.Email)
	writeJSON(w, http.StatusOK, map[string]string{"email": in.Email, "permission_to_send": permUnsubscribed})
}

// hookCreateList is POST /sandbox/lists {"name": …}, seeding without a token.
func (s *Server) hookCreateList(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if !decodeHook(w, r, &in) {
		return
	}
	if in.Name == "" {
		writeError(w, http.StatusBadRequest, keyValidation, "ccsandbox: name is required")
		return
	}
	writeJSON(w, http.StatusOK, s.CreateList(in.Name))
}

// hookCreateCustomField is POST /sandbox/custom_fields {"label": …}.
func (s *Server) hookCreateCustomField(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Label string `json:"label"`
	}
	if !decodeHook(w, r, &in) {
		return
	}
	if in.Label == "" {
		writeError(w, http.StatusBadRequest, keyValidation, "ccsandbox: label is required")
		return
	}
	writeJSON(w, http.StatusOK, s.CreateCustomField(in.Label))
}

// hookGetFaults is GET /sandbox/faults.
func (s *Server) hookGetFaults(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, f)
}

// hookSetFaults is PUT /sandbox/faults with a Faults body.
func (s *Server) hookSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decodeHook(w, r, &f) {
		return
	}
	if err := s.SetFaults(f); err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// hookPatchFaults is POST /sandbox/faults: it changes only the keys the body
// holds, so that a person running `hs2cc dev` can turn on, say,
// {"fail_rate":0.1} without restating the other faults. A "status" key
// replaces the whole map. Unknown keys are refused, because a misspelt rate
// would otherwise leave the sandbox quietly healthy.
func (s *Server) hookPatchFaults(w http.ResponseWriter, r *http.Request) {
	var patch struct {
		ImportOutcome *string         `json:"import_outcome"`
		Status        *map[string]int `json:"status"`
		Limit         *string         `json:"limit"`
		FailRate      *float64        `json:"fail_rate"`
		ThrottleRate  *float64        `json:"throttle_rate"`
		RejectRate    *float64        `json:"reject_rate"`
		RejectDetail  *string         `json:"reject_detail"`
		DropRate      *float64        `json:"drop_rate"`
	}
	body, tooBig, err := readBody(r, 1<<20)
	if err == nil && tooBig {
		err = fmt.Errorf("body over 1 MiB")
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&patch)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "ccsandbox: bad hook body: "+err.Error())
		return
	}
	// The read, merge and write happen under one lock, so two concurrent
	// patches of different keys cannot undo each other.
	s.mu.Lock()
	f := s.faults
	f.Status = maps.Clone(f.Status)
	if patch.ImportOutcome != nil {
		f.ImportOutcome = *patch.ImportOutcome
	}
	if patch.Status != nil {
		f.Status = maps.Clone(*patch.Status)
	}
	if patch.Limit != nil {
		f.Limit = *patch.Limit
	}
	if patch.FailRate != nil {
		f.FailRate = *patch.FailRate
	}
	if patch.ThrottleRate != nil {
		f.ThrottleRate = *patch.ThrottleRate
	}
	if patch.RejectRate != nil {
		f.RejectRate = *patch.RejectRate
	}
	if patch.RejectDetail != nil {
		f.RejectDetail = *patch.RejectDetail
	}
	if patch.DropRate != nil {
		f.DropRate = *patch.DropRate
	}
	err = f.validate()
	if err == nil {
		s.faults = f
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// hookClock is GET /sandbox/clock.
func (s *Server) hookClock(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"now": s.Now().UTC().Format(time.RFC3339Nano)})
}

// hookAdvanceClock is POST /sandbox/clock {"advance": "25h"}.
func (s *Server) hookAdvanceClock(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Advance string `json:"advance"`
	}
	if !decodeHook(w, r, &in) {
		return
	}
	d, err := time.ParseDuration(in.Advance)
	if err != nil || d < 0 {
		writeError(w, http.StatusBadRequest, keyValidation, "ccsandbox: advance must be a positive Go duration such as \"25h\"")
		return
	}
	s.Advance(d)
	s.hookClock(w, r)
}

// hookIssueToken is POST /sandbox/token {"scope": …}: IssueToken over HTTP,
// for scripts that want a token without the browser flow.
func (s *Server) hookIssueToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Scope string `json:"scope"`
	}
	if !decodeHook(w, r, &in) {
		return
	}
	if in.Scope == "" {
		in.Scope = defaultIssueScope
	}
	if _, ok := normalizeScope(in.Scope); !ok {
		writeError(w, http.StatusBadRequest, keyValidation, "ccsandbox: unknown scope in "+in.Scope)
		return
	}
	access, refresh := s.IssueToken(in.Scope)
	writeJSON(w, http.StatusOK, map[string]string{"access_token": access, "refresh_token": refresh})
}

// ExpireAccessTokens ends every access token issued so far, before its
// stated expiry, as CC does when it revokes or rotates keys: the next API
// call with one is a 401, and a client must refresh. Refresh tokens stay
// valid. It returns how many tokens it ended.
func (s *Server) ExpireAccessTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	n := 0
	for _, at := range s.access {
		if at.expires.After(now) {
			at.expires = now
			n++
		}
	}
	return n
}

// hookExpireTokens is POST /sandbox/expire-tokens.
func (s *Server) hookExpireTokens(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"expired": s.ExpireAccessTokens()})
}

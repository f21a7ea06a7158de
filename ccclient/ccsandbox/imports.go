package ccsandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Import limits from CC's docs and spec.
const (
	maxImportContacts = 40_000
	maxImportLists    = 50
	maxQueued         = 1000 // activities not yet final, per account
	maxErrorsReported = 25   // validation errors in one 400 body
	// hardBodyLimit bounds what the sandbox reads at all, far above CC's
	// 4 MB, so that truncation can be shown without unbounded memory.
	hardBodyLimit = 64 << 20
)

// importRequest is a validated ContactsJsonImport.
type importRequest struct {
	listIDs []string
	records []*importRecord
	dropped int // rows past MaxImportBytes that were silently dropped
}

// errMalformed marks a body that is not JSON at all, as opposed to JSON that
// breaks a rule.
var errMalformed = errors.New("malformed JSON")

// postImport is POST /v3/activities/contacts_json_import. It validates the
// whole request up front (CC answers 400 before queueing), then queues an
// activity whose rows are applied when it completes on the sandbox clock.
func (s *Server) postImport(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, tooBig, err := readBody(r, hardBodyLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body could not be read.")
		return
	}
	if tooBig {
		writeError(w, http.StatusRequestEntityTooLarge, keyValidation, "The request body is far above the 4 MB import limit.")
		return
	}
	limit := len(body)
	if len(body) > s.opts.MaxImportBytes {
		if s.opts.OversizeMode == OversizeReject {
			writeError(w, http.StatusBadRequest, keyValidation,
				fmt.Sprintf("The request body is %d bytes; the maximum is %d.", len(body), s.opts.MaxImportBytes))
			return
		}
		limit = s.opts.MaxImportBytes
	}
	req, errs := parseImport(body, limit)
	if len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs)
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	s.settleLocked(now)
	var unknown []apiError
	for _, id := range req.listIDs {
		if s.listByID[id] == nil {
			unknown = append(unknown, apiError{keyValidation, "list_ids holds an unknown list_id: " + id})
		}
	}
	var a *activity
	switch {
	case len(unknown) > 0:
	case len(s.pending) >= maxQueued:
		s.stats.QueueFull++
	default:
		a = s.queueImportLocked(req, now)
	}
	s.mu.Unlock()

	switch {
	case len(unknown) > 0:
		writeErrors(w, http.StatusBadRequest, unknown)
	case a == nil:
		// The spec documents this 429 but not its body; it uses the object
		// shape of CC's other 429s with its own key.
		writeObjectError(w, http.StatusTooManyRequests, keyQueueFull,
			"Too many requests. You exceeded 1,000 queued activities for this user account.")
	default:
		s.log.Info("ccsandbox: import queued", "activity_id", a.id, "contacts", len(req.records), "dropped", req.dropped, "lists", len(req.listIDs))
		writeJSON(w, http.StatusCreated, a.importJSON())
	}
}

// parseImport decodes and validates a ContactsJsonImport body. Rows whose
// JSON ends past limit bytes are dropped unread, which is what CC does with
// a body over 4 MB; everything else in the body still counts, so list_ids
// placed after import_data are honoured.
func parseImport(body []byte, limit int) (*importRequest, []apiError) {
	var errs importErrors
	b, err := decodeImport(body, limit, &errs)
	if err != nil {
		return nil, []apiError{{keyMalformedJSON, "The request body is not valid JSON: " + err.Error()}}
	}
	b.checkRequired(&errs)
	if len(errs) > 0 {
		return nil, errs
	}
	b.req.records = make([]*importRecord, 0, len(b.rows))
	for i, m := range b.rows {
		rec, err := parseRecord(i, m)
		if err != nil {
			errs.add("%v", err)
			continue
		}
		b.req.records = append(b.req.records, rec)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return b.req, nil
}

// importErrors gathers the validation errors of one request, keeping only
// as many as CC reports in one 400 body.
type importErrors []apiError

// add records a validation error unless the list is already full.
func (errs *importErrors) add(format string, args ...any) {
	if len(*errs) < maxErrorsReported {
		*errs = append(*errs, apiError{keyValidation, fmt.Sprintf(format, args...)})
	}
}

// decodedImport is a ContactsJsonImport as decoded, before its rows are
// checked: the request so far, the rows kept, and which of the required
// members the body had.
type decodedImport struct {
	req               *importRequest
	rows              []map[string]any
	hasData, hasLists bool
}

// decodeImport reads the top-level object of body, adding to errs what
// breaks a rule. A returned error means the body is not JSON at all, which
// CC reports alone, whatever else is wrong.
func decodeImport(body []byte, limit int, errs *importErrors) (*decodedImport, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	b := &decodedImport{req: &importRequest{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if err := b.decodeMember(dec, key, limit, errs); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the top-level object")
	}
	return b, nil
}

// decodeMember reads the value of the top-level member key into b, adding
// to errs what breaks a rule; members CC does not define are skipped. A
// returned error means the value is not JSON.
func (b *decodedImport) decodeMember(dec *json.Decoder, key string, limit int, errs *importErrors) error {
	switch key {
	case "import_data":
		b.hasData = true
		var err error
		b.rows, b.req.dropped, err = decodeRows(dec, limit)
		if errors.Is(err, errMalformed) {
			return err
		}
		if err != nil {
			errs.add("%v", err)
		}
	case "list_ids":
		b.hasLists = true
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		ids, err := listIDsOf(v)
		if err != nil {
			errs.add("%v", err)
		}
		b.req.listIDs = ids
	case "sms_permission_to_send":
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if v != nil && v != "explicit" && v != "not_set" {
			errs.add("sms_permission_to_send must be explicit or not_set")
		}
	default:
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// checkRequired adds to errs the rules on the request as a whole: both
// members present, and a contact count CC accepts. An empty import_data is
// reported only when no error came before it: an import_data of the wrong
// shape keeps no rows, and has been reported already.
func (b *decodedImport) checkRequired(errs *importErrors) {
	switch {
	case !b.hasData:
		errs.add("import_data is required")
	case len(b.rows) == 0 && len(*errs) == 0:
		errs.add("import_data must hold at least one contact")
	case len(b.rows) > maxImportContacts:
		errs.add("import_data holds %d contacts; the maximum is %d", len(b.rows), maxImportContacts)
	}
	if !b.hasLists {
		errs.add("list_ids is required")
	}
}

// decodeRows reads the import_data array, keeping the rows whose JSON ends
// within limit bytes of the body and counting the rest as dropped.
func decodeRows(dec *json.Decoder, limit int) ([]map[string]any, int, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if tok != json.Delim('[') {
		if tok == json.Delim('{') {
			if err := skipRest(dec); err != nil {
				return nil, 0, fmt.Errorf("%w: %w", errMalformed, err)
			}
		}
		return nil, 0, errors.New("import_data must be an array of contacts")
	}
	var rows []map[string]any
	var dropped, i int
	var shapeErr error
	for ; dec.More(); i++ {
		var m map[string]any
		err := dec.Decode(&m)
		var typeErr *json.UnmarshalTypeError
		if err != nil && !errors.As(err, &typeErr) {
			return nil, 0, fmt.Errorf("%w: %w", errMalformed, err)
		}
		// The decoder has consumed the whole element even on a type error,
		// so the offset tells whether CC would have read it at all. A row
		// CC never reads cannot make the request invalid.
		if int(dec.InputOffset()) > limit {
			dropped++
			continue
		}
		if err != nil || m == nil {
			if shapeErr == nil {
				shapeErr = fmt.Errorf("import_data[%d] must be an object", i)
			}
			continue
		}
		rows = append(rows, m)
	}
	if _, err := dec.Token(); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return rows, dropped, shapeErr
}

// listIDsOf checks list_ids: an array of 1 to 50 UUID strings. Duplicates
// are folded, since adding a contact to a list twice is adding it once.
func listIDsOf(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, errors.New("list_ids must be an array of list_id strings")
	}
	if len(arr) == 0 {
		return nil, errors.New("list_ids must hold at least one list_id")
	}
	if len(arr) > maxImportLists {
		return nil, fmt.Errorf("list_ids holds %d list_ids; the maximum is %d", len(arr), maxImportLists)
	}
	ids := make([]string, 0, len(arr))
	seen := map[string]bool{}
	for _, e := range arr {
		id, ok := e.(string)
		if !ok || !isUUID(id) {
			return nil, fmt.Errorf("list_ids must hold UUIDs; %v is not one", e)
		}
		id = strings.ToLower(id)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// expectDelim reads the next token and checks it is d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("expected %q, found %v", d, tok)
	}
	return nil
}

// skipRest consumes the rest of an object or array whose opening delimiter
// has just been read.
func skipRest(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

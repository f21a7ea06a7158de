package hssandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBatch is the most inputs HubSpot takes in one batch call.
const maxBatch = 100

type batchInput struct {
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

type contactResult struct {
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
	UpdatedAt  string            `json:"updatedAt"`
}

// notFoundMessage is HubSpot's text for ids it does not have.
const notFoundMessage = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."

func (s *Server) batchUpdate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Inputs []batchInput `json:"inputs"`
	}
	if !decode(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg, errs := s.invalidBatchLocked(body.Inputs); msg != "" {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", msg, errs)
		return
	}
	var missing []string
	var found []batchInput
	for _, in := range body.Inputs {
		if s.existsLocked(in.ID) {
			found = append(found, in)
		} else {
			missing = append(missing, in.ID)
		}
	}
	if len(missing) > 0 && s.opts.Missing != MissingMultiStatus {
		s.refuseMissing(w, missing)
		return
	}
	now := s.opts.Now().UTC().Format(time.RFC3339Nano)
	results := make([]contactResult, 0, len(found))
	for _, in := range found {
		c := s.contacts[in.ID]
		if c == nil {
			c = map[string]string{}
			s.contacts[in.ID] = c
		}
		for k, v := range in.Properties {
			c[k] = v
		}
		cp := make(map[string]string, len(c))
		for k, v := range c {
			cp[k] = v
		}
		results = append(results, contactResult{ID: in.ID, Properties: cp, UpdatedAt: now})
	}
	out := map[string]any{"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
	if len(missing) == 0 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	out["numErrors"] = 1
	out["errors"] = []errorDetail{{Status: "error", Category: "OBJECT_NOT_FOUND", Message: notFoundMessage, Context: map[string][]string{"ids": missing}}}
	writeJSON(w, http.StatusMultiStatus, out)
}

// refuseMissing refuses a whole batch for its missing ids, naming them in
// context.ids or, in MissingRefuseMessage, only in the message.
func (s *Server) refuseMissing(w http.ResponseWriter, missing []string) {
	b := errorBody{Status: "error", Message: notFoundMessage, CorrelationID: correlationID(), Category: "OBJECT_NOT_FOUND"}
	if s.opts.Missing == MissingRefuseMessage {
		b.Message += " Missing ids: " + strings.Join(missing, ", ")
	} else {
		b.Context = map[string][]string{"ids": missing}
	}
	writeJSON(w, http.StatusBadRequest, b)
}

// existsLocked reports whether HubSpot has contact id: every numeric id
// does until it is deleted.
func (s *Server) existsLocked(id string) bool {
	n, err := strconv.ParseUint(id, 10, 64)
	return err == nil && n > 0 && !s.deleted[id]
}

// invalidBatchLocked checks the size, duplicate ids and every property
// value; any problem refuses the whole batch.
func (s *Server) invalidBatchLocked(inputs []batchInput) (string, []errorDetail) {
	if len(inputs) == 0 || len(inputs) > maxBatch {
		return fmt.Sprintf("inputs: %d given, between 1 and %d allowed", len(inputs), maxBatch), nil
	}
	seen := map[string]bool{}
	var errs []errorDetail
	for _, in := range inputs {
		if seen[in.ID] {
			return "Duplicate IDs found in batch input: [" + in.ID + "]. IDs must be unique", nil
		}
		seen[in.ID] = true
		for k, v := range in.Properties {
			if msg := s.invalidValueLocked(k, v); msg != "" {
				errs = append(errs, errorDetail{Message: msg, Context: map[string][]string{"propertyName": {k}}})
			}
		}
	}
	if len(errs) > 0 {
		return "Property values were not valid", errs
	}
	return "", nil
}

// invalidValueLocked says why value cannot be set on property name, or ""
// when it can. An empty value clears any property.
func (s *Server) invalidValueLocked(name, value string) string {
	p, ok := s.props[name]
	switch {
	case !ok:
		return fmt.Sprintf("Property %q does not exist", name)
	case value == "":
		return ""
	case p.Type == "enumeration":
		if !slices.ContainsFunc(p.Options, func(o option) bool { return o.Value == value }) {
			return fmt.Sprintf("%s was not one of the allowed options for %s", value, name)
		}
	case p.Type == "datetime" || p.Type == "date":
		if !validDatetime(value) {
			return fmt.Sprintf("%s is not a valid datetime for %s: use ISO 8601 or epoch milliseconds", value, name)
		}
	case p.Type == "number":
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return fmt.Sprintf("%s is not a number", value)
		}
	}
	return ""
}

// validDatetime accepts what HubSpot documents: ISO 8601 or epoch ms.
func validDatetime(v string) bool {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return true
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if _, err := time.Parse(layout, v); err == nil {
			return true
		}
	}
	return false
}

func (s *Server) deleteContact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	s.deleted[id] = true
	delete(s.contacts, id)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

package ccsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Account limits on custom fields, from CC's docs and the CustomField schema.
const (
	maxCustomFields   = 100
	maxCustomLabel    = 50
	maxCustomFieldsCF = 25 // cf: keys per imported contact
)

// customField is a custom field of the sandbox account. Imports address it
// by name ("cf:<name>"), contacts carry it by id.
type customField struct {
	id        string
	label     string
	name      string
	typ       string
	createdAt time.Time
	updatedAt time.Time
}

// CustomFieldInfo describes a custom field, for seeding and assertions.
type CustomFieldInfo struct {
	CustomFieldID string `json:"custom_field_id"`
	Label         string `json:"label"`
	Name          string `json:"name"`
	Type          string `json:"type"`
}

func (f *customField) info() CustomFieldInfo {
	return CustomFieldInfo{CustomFieldID: f.id, Label: f.label, Name: f.name, Type: f.typ}
}

// customFieldJSON is CC's CustomField.
type customFieldJSON struct {
	CustomFieldID string `json:"custom_field_id"`
	Label         string `json:"label"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

func (f *customField) json() customFieldJSON {
	return customFieldJSON{
		CustomFieldID: f.id,
		Label:         f.label,
		Name:          f.name,
		Type:          f.typ,
		CreatedAt:     stamp(f.createdAt),
		UpdatedAt:     stamp(f.updatedAt),
	}
}

// customFieldName derives the name imports use from a label, as CC does:
// the label with blanks replaced by underscores.
func customFieldName(label string) string {
	return strings.ReplaceAll(strings.TrimSpace(label), " ", "_")
}

// addCustomFieldLocked creates a field; callers check the rules.
func (s *Server) addCustomFieldLocked(label, typ string) *customField {
	now := s.nowLocked()
	f := &customField{
		id:        newUUID(),
		label:     label,
		name:      customFieldName(label),
		typ:       typ,
		createdAt: now,
		updatedAt: now,
	}
	s.fields = append(s.fields, f)
	s.fieldByName[f.name] = f
	return f
}

// fieldByIDLocked finds a custom field by id, or returns nil.
func (s *Server) fieldByIDLocked(id string) *customField {
	for _, f := range s.fields {
		if f.id == id {
			return f
		}
	}
	return nil
}

// CreateCustomField seeds a text custom field with this label, returning the
// existing one when the derived name is taken. Imports may then set it as
// "cf:<Name>"; unknown cf: keys are silently dropped, as CC drops them.
func (s *Server) CreateCustomField(label string) CustomFieldInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.fieldByName[customFieldName(label)]; f != nil {
		return f.info()
	}
	return s.addCustomFieldLocked(label, "string").info()
}

// getCustomFields is GET /v3/contact_custom_fields.
func (s *Server) getCustomFields(w http.ResponseWriter, r *http.Request) {
	p, offset := pagedParams(r)
	q := p.q
	limit := p.limit(50, 100)
	if p.err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, p.err.Error())
		return
	}
	s.mu.Lock()
	start, end := window(offset, limit, len(s.fields))
	out := struct {
		CustomFields []customFieldJSON `json:"custom_fields"`
		Links        *pagingLinks      `json:"_links,omitempty"`
	}{CustomFields: make([]customFieldJSON, 0, end-start)}
	for _, f := range s.fields[start:end] {
		out.CustomFields = append(out.CustomFields, f.json())
	}
	out.Links = nextLink("/v3/contact_custom_fields", q, end, len(s.fields))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// validCustomFieldType reports whether t is a data type CC offers for
// custom fields.
func validCustomFieldType(t string) bool {
	switch t {
	case "string", "number", "currency", "date", "boolean", "single_select", "multi_select":
		return true
	}
	return false
}

// postCustomField is POST /v3/contact_custom_fields.
func (s *Server) postCustomField(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, tooBig, err := readBody(r, 1<<20)
	if err != nil || tooBig {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body could not be read or is too large.")
		return
	}
	var in struct {
		Label *string `json:"label"`
		Type  *string `json:"type"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body is not valid JSON for CustomFieldRequest: "+err.Error())
		return
	}
	switch {
	case in.Label == nil || strings.TrimSpace(*in.Label) == "":
		writeError(w, http.StatusBadRequest, keyValidation, "label is required.")
		return
	case utf8.RuneCountInString(*in.Label) > maxCustomLabel:
		writeError(w, http.StatusBadRequest, keyValidation, fmt.Sprintf("label must be at most %d characters.", maxCustomLabel))
		return
	case in.Type == nil || !validCustomFieldType(*in.Type):
		writeError(w, http.StatusBadRequest, keyValidation, "type must be one of string, number, currency, date, boolean, single_select, multi_select.")
		return
	}
	s.mu.Lock()
	var f *customField
	status := http.StatusCreated
	switch {
	case s.fieldByName[customFieldName(*in.Label)] != nil:
		status = http.StatusConflict
	case len(s.fields) >= maxCustomFields:
		status = http.StatusBadRequest
	default:
		f = s.addCustomFieldLocked(*in.Label, *in.Type)
	}
	s.mu.Unlock()
	switch status {
	case http.StatusConflict:
		writeError(w, status, keyConflict, fmt.Sprintf("A custom field named %q already exists.", customFieldName(*in.Label)))
	case http.StatusBadRequest:
		writeError(w, status, keyValidation, fmt.Sprintf("The account already has the maximum of %d custom fields.", maxCustomFields))
	default:
		writeJSON(w, status, f.json())
	}
}

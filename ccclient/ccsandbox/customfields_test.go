package ccsandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

func TestImportCustomFields(t *testing.T) {
	tests := []struct {
		name     string
		label    string // created through POST /v3/contact_custom_fields; "" creates none
		wantName string // the name CC derives from label
		key      string // the cf: key the import sends
		kept     bool   // whether the value reaches the contact
	}{
		{"the field's name", "Agency ID", "Agency_ID", "cf:Agency_ID", true},
		{"one word", "Region", "Region", "cf:Region", true},
		{"several spaces", "Favourite Travel Agent", "Favourite_Travel_Agent", "cf:Favourite_Travel_Agent", true},
		{"the label instead of the name", "Agency ID", "Agency_ID", "cf:Agency ID", false},
		{"another field's name", "Region", "Region", "cf:agency_id", false},
		{"an account without fields", "", "", "cf:agency_id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			list := e.srv.CreateList("Agents").ListID
			var fieldID string
			if tt.label != "" {
				r := e.call(http.MethodPost, "/v3/contact_custom_fields", map[string]string{"label": tt.label, "type": "string"})
				wantStatus(t, r, http.StatusCreated)
				var f CustomFieldInfo
				r.decode(t, &f)
				if f.Name != tt.wantName || f.Label != tt.label || f.Type != "string" {
					t.Fatalf("custom field %+v: want name %q", f, tt.wantName)
				}
				fieldID = f.CustomFieldID
				var all struct {
					CustomFields []CustomFieldInfo `json:"custom_fields"`
				}
				e.call(http.MethodGet, "/v3/contact_custom_fields", nil).decode(t, &all)
				if len(all.CustomFields) != 1 || all.CustomFields[0].Name != tt.wantName {
					t.Errorf("GET /v3/contact_custom_fields %+v: want the one field, named %q", all.CustomFields, tt.wantName)
				}
			}

			// An unknown cf: key is no error: the import completes and the
			// rest of the row is imported.
			a := e.importNow(importBody([]string{list}, row("email", "ann@example.com", "first_name", "Ann", tt.key, "A-1001")))
			if a.Status["person_count"] != 1 || a.Status["error_count"] != 0 || a.Status["correctable_count"] != 0 || len(a.ActivityErrors) != 0 {
				t.Errorf("activity %v %q: want one contact and no error either way", a.Status, a.ActivityErrors)
			}

			// /sandbox/contacts keys custom_fields by the field's name.
			r := e.call(http.MethodGet, "/sandbox/contacts", nil, withToken(""))
			wantStatus(t, r, http.StatusOK)
			var raw struct {
				Contacts []map[string]json.RawMessage `json:"contacts"`
			}
			r.decode(t, &raw)
			if len(raw.Contacts) != 1 || string(raw.Contacts[0]["first_name"]) != `"Ann"` {
				t.Fatalf("contacts %s: want Ann", r.body)
			}
			cf, has := raw.Contacts[0]["custom_fields"]
			switch {
			case tt.kept && string(cf) != `{"`+tt.wantName+`":"A-1001"}`:
				t.Errorf("custom_fields %s, want {%q: \"A-1001\"}", cf, tt.wantName)
			case !tt.kept && has:
				t.Errorf("custom_fields %s: the unknown %s must be dropped", cf, tt.key)
			}

			// The API shows the value by the field's id.
			r = e.call(http.MethodGet, "/v3/contacts?include=custom_fields&email="+url.QueryEscape("ann@example.com"), nil)
			wantStatus(t, r, http.StatusOK)
			var p contactsPage
			r.decode(t, &p)
			if len(p.Contacts) != 1 || p.Contacts[0].CustomFields == nil {
				t.Fatalf("contacts %s: want Ann with custom_fields", r.body)
			}
			got := *p.Contacts[0].CustomFields
			switch {
			case tt.kept && (len(got) != 1 || got[0].CustomFieldID != fieldID || got[0].Value != "A-1001"):
				t.Errorf("custom_fields %+v, want %s = A-1001", got, fieldID)
			case !tt.kept && len(got) != 0:
				t.Errorf("custom_fields %+v, want none", got)
			}
		})
	}
}

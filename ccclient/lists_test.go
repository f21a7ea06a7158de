package ccclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestContactListsFollowsNextLinks(t *testing.T) {
	c, mux, _ := setup(t, nil)
	var (
		mu      sync.Mutex
		queries []string
	)
	mux.HandleFunc("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		switch r.URL.Query().Get("cursor") {
		case "":
			if r.URL.Query().Get("limit") != "1000" {
				t.Errorf("first page query %q, want limit=1000", r.URL.RawQuery)
			}
			writeJSON(w, 200, `{"lists":[{"list_id":"l1","name":"Agents","description":"d","favorite":true,`+
				`"created_at":"2016-01-23T13:48:44.108Z","updated_at":"2016-03-03T10:56:29-05:00","membership_count":327}],`+
				`"lists_count":3,"_links":{"next":{"href":"/v3/contact_lists?cursor=bGltaXQ9MSZuZXh0PTI%3D"}}}`)
		case "bGltaXQ9MSZuZXh0PTI=":
			writeJSON(w, 200, `{"lists":[{"list_id":"l2","name":"Agents CA"}],"_links":{"next":{"href":"/v3/contact_lists?cursor=page3"}}}`)
		case "page3":
			writeJSON(w, 200, `{"lists":[{"list_id":"l3","name":"Agents TX"}]}`)
		default:
			t.Errorf("unexpected query %q", r.URL.RawQuery)
			w.WriteHeader(400)
		}
	})
	lists, err := c.ContactLists(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 3 || lists[0].ListID != "l1" || lists[1].ListID != "l2" || lists[2].ListID != "l3" {
		t.Fatalf("lists = %+v", lists)
	}
	l := lists[0]
	if l.Name != "Agents" || l.Description != "d" || !l.Favorite || l.MembershipCount != 327 ||
		!l.CreatedAt.Equal(time.Date(2016, 1, 23, 13, 48, 44, 108e6, time.UTC)) ||
		!l.UpdatedAt.Equal(time.Date(2016, 3, 3, 15, 56, 29, 0, time.UTC)) {
		t.Errorf("first list = %+v", l)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queries) != 3 {
		t.Errorf("requests = %d (%v), want 3", len(queries), queries)
	}
}

func TestContactListsPagingErrors(t *testing.T) {
	tests := []struct {
		name, next string
		wantErr    string
	}{
		{"loop", "/v3/contact_lists?limit=1000", "paging loop"},
		{"foreign host", "https://evil.example/v3/contact_lists?cursor=x", "foreign host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, nil)
			mux.HandleFunc("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `{"lists":[{"list_id":"l1","name":"A"}],"_links":{"next":{"href":"`+tt.next+`"}}}`)
			})
			_, err := c.ContactLists(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestContactListsErrorMidway(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") == "" {
			writeJSON(w, 200, `{"lists":[{"list_id":"l1","name":"A"}],"_links":{"next":{"href":"/v3/contact_lists?cursor=2"}}}`)
			return
		}
		writeJSON(w, 503, `[{"error_key":"unavailable","error_message":"try later"}]`)
	})
	lists, err := c.ContactLists(context.Background())
	var e *APIError
	if !errors.As(err, &e) || !e.Temporary() || lists != nil {
		t.Errorf("lists %v, err %v; want nil and a temporary *APIError", lists, err)
	}
}

func TestContactListByName(t *testing.T) {
	tests := []struct {
		name, query, response string
		wantID                string
		wantNotFound          bool
	}{
		{"exact", "Travel Agents – US", `{"lists":[{"list_id":"l1","name":"Travel Agents – US"}]}`, "l1", false},
		{"exact preferred over case fold", "Agents", `{"lists":[{"list_id":"l1","name":"AGENTS"},{"list_id":"l2","name":"Agents"}]}`, "l2", false},
		{"case fold fallback", "agents", `{"lists":[{"list_id":"l1","name":"Agents"}]}`, "l1", false},
		{"none", "Missing", `{"lists":[]}`, "", true},
		{"no lists key", "Missing", `{}`, "", true},
		{"other names only", "Agents", `{"lists":[{"list_id":"l1","name":"Agents 2"}]}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, nil)
			mux.HandleFunc("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
				if got := r.URL.Query().Get("name"); got != tt.query {
					t.Errorf("name = %q, want %q", got, tt.query)
				}
				writeJSON(w, 200, tt.response)
			})
			l, err := c.ContactListByName(context.Background(), tt.query)
			if tt.wantNotFound {
				if !errors.Is(err, ErrNotFound) || l != nil {
					t.Errorf("got %+v, %v; want ErrNotFound", l, err)
				}
				return
			}
			if err != nil || l.ListID != tt.wantID {
				t.Errorf("got %+v, %v; want %s", l, err, tt.wantID)
			}
		})
	}
}

func TestCreateContactList(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("/v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" {
			t.Errorf("method %s", r.Method)
		}
		testHeader(t, r, "Content-Type", "application/json")
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		switch body["name"] {
		case "Agents – Québec":
			if body["description"] != "Enrolled agents" || body["favorite"] != false || len(body) != 3 {
				t.Errorf("body = %s", raw)
			}
			writeJSON(w, 201, `{"list_id":"06526938-56dd-11e9-932a-fa163ea075fa","name":"Agents – Québec","description":"Enrolled agents",`+
				`"favorite":false,"created_at":"2026-04-28T21:48:16Z","updated_at":"2026-04-28T21:48:16Z"}`)
		case "No description":
			if _, ok := body["description"]; ok {
				t.Errorf("empty description sent: %s", raw)
			}
			writeJSON(w, 201, `{"list_id":"l2","name":"No description"}`)
		case "Taken":
			writeJSON(w, 409, `[{"error_key":"contacts.api.conflict","error_message":"The list name already exists."}]`)
		default:
			t.Errorf("unexpected body %s", raw)
		}
	})
	ctx := context.Background()
	l, err := c.CreateContactList(ctx, "Agents – Québec", "Enrolled agents")
	if err != nil {
		t.Fatal(err)
	}
	if l.ListID != "06526938-56dd-11e9-932a-fa163ea075fa" || l.Name != "Agents – Québec" || l.CreatedAt.IsZero() {
		t.Errorf("list = %+v", l)
	}
	if _, err := c.CreateContactList(ctx, "No description", ""); err != nil {
		t.Error(err)
	}
	_, err = c.CreateContactList(ctx, "Taken", "")
	var e *APIError
	if !errors.As(err, &e) || !e.Conflict() || e.Temporary() {
		t.Errorf("err = %v, want a 409 *APIError", err)
	}
	if !strings.HasPrefix(err.Error(), "ccclient: create contact list: ") {
		t.Errorf("err = %q", err)
	}
	if _, err := c.CreateContactList(ctx, " ", ""); err == nil {
		t.Error("blank name accepted")
	}
}

func TestDeleteContactList(t *testing.T) {
	const id = "06526938-56dd-11e9-932a-fa163ea075fa"
	tests := []struct {
		name          string
		listID        string
		status        int
		body          string
		wantErr       bool
		wantNotFound  bool
		wantTemporary bool
		wantRequest   bool
	}{
		{name: "accepted", listID: id, status: 202, wantRequest: true,
			body: `{"activity_id":"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a","state":"initialized","_links":{"self":{"href":"/v3/activities/04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"}}}`},
		{name: "accepted without a body", listID: id, status: 202, wantRequest: true},
		{name: "unknown list", listID: id, status: 404, wantRequest: true, wantErr: true, wantNotFound: true,
			body: `[{"error_key":"contacts.api.not.found","error_message":"Resource not found for the list_id provided"}]`},
		{name: "unavailable", listID: id, status: 503, wantRequest: true, wantErr: true, wantTemporary: true,
			body: `[{"error_key":"service_unavailable","error_message":"try later"}]`},
		{name: "blank id", listID: " ", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, nil)
			var (
				mu    sync.Mutex
				calls int
			)
			mux.HandleFunc("/v3/contact_lists/", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				if r.Method != http.MethodDelete || r.URL.Path != "/v3/contact_lists/"+tt.listID {
					t.Errorf("request %s %s, want DELETE /v3/contact_lists/%s", r.Method, r.URL.Path, tt.listID)
				}
				testHeader(t, r, "Authorization", "Bearer "+testToken)
				testHeader(t, r, "Content-Type", "")
				if tt.body == "" {
					w.WriteHeader(tt.status)
					return
				}
				writeJSON(w, tt.status, tt.body)
			})
			err := c.DeleteContactList(context.Background(), tt.listID)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			mu.Lock()
			n := calls
			mu.Unlock()
			if got := n == 1; got != tt.wantRequest {
				t.Errorf("%d requests, want a request: %v", n, tt.wantRequest)
			}
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), "ccclient: delete contact list") {
				t.Errorf("err = %q, want the op name first", err)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.wantNotFound)
			}
			var e *APIError
			if got := errors.As(err, &e) && e.Temporary(); got != tt.wantTemporary {
				t.Errorf("temporary *APIError: %v, want %v (err %v)", got, tt.wantTemporary, err)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/trace"
)

type noEnqueue struct{}

func (noEnqueue) EnqueueEnrollment(context.Context, int64, int, []string) error { return nil }

// TestTraceCommand: a delivery the rules sent nowhere, replayed with
// `hs2cc deliveries replay` once the lists are fixed, is one story in
// `hs2cc trace`, in text and JSON; an unknown contact exits 1 with the
// closest known emails; a trace without a contact is a usage error.
func TestTraceCommand(t *testing.T) {
	ctx := t.Context()
	getenv, db := migratedStore(t)
	// Rules without default lists: a silver agent goes nowhere.
	strict, err := routing.Parse([]byte("routes:\n  - when: {property: agent_tier, equals: gold}\n    lists: [Gold Agents]\n"))
	if err != nil {
		t.Fatal(err)
	}
	core := ingest.New(ingest.Config{Router: strict, Logger: slog.New(slog.DiscardHandler)}, db, noEnqueue{})
	arrived := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	body := []byte(`{"portalId":62515,"hs_object_id":"101","email":"ann@example.com","agent_tier":"silver"}`)
	if res, err := core.Ingest(ctx, body, hubspot.Verified{Version: hubspot.V3}, arrived); err != nil || res.Code != ingest.CodeNoRoute {
		t.Fatalf("first delivery: %+v, %v; want no_route", res, err)
	}
	for _, email := range []string{"anne@example.com", "bob@example.com", "ann@example.org"} {
		b := fmt.Appendf(nil, `{"portalId":62515,"email":%q,"agent_tier":"gold"}`, email)
		if _, err := core.Ingest(ctx, b, hubspot.Verified{Version: hubspot.V3}, arrived); err != nil {
			t.Fatal(err)
		}
	}
	// The default configuration sends every contact to New Agents.
	var out bytes.Buffer
	since := "--since=" + time.Since(arrived.Add(-time.Hour)).Round(time.Hour).String()
	if err := run(ctx, []string{"deliveries", "replay", "--verdict", "no_route", since}, getenv, &out, &out); err != nil {
		t.Fatalf("deliveries replay: %v\n%s", err, out.String())
	}

	want := []string{
		"Contact ann@example.com (HubSpot id 101, portal 62515): enrollment 4, version 1, pending, lists New Agents",
		"2026-03-02 09:00:00 UTC  delivery 1 (workflow, signature v3): rejected as no_route: no route matched and no default_lists",
		"2026-03-02 09:00:00 UTC  delivery 5 (workflow, signature v3, replay of delivery 1): accepted as version 1 of enrollment 4",
		"2026-03-02 09:00:00 UTC  version 1: first version; lists New Agents (HS2CC_CC_LISTS → New Agents)",
	}
	out.Reset()
	if err := run(ctx, []string{"trace", "ann@example.com"}, getenv, &out, &out); err != nil {
		t.Fatalf("trace: %v\n%s", err, out.String())
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	// The last line says the version waits, dated when it was stored.
	if len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) || !strings.HasSuffix(got[len(want)], "version 1 waits for an import (pending)") {
		t.Errorf("trace printed:\n%s\nwant:\n%s\n… version 1 waits for an import (pending)", out.String(), strings.Join(want, "\n"))
	}

	out.Reset()
	if err := run(ctx, []string{"trace", "--json", "101"}, getenv, &out, &out); err != nil {
		t.Fatalf("trace --json: %v\n%s", err, out.String())
	}
	var story trace.Story
	if err := json.Unmarshal(out.Bytes(), &story); err != nil {
		t.Fatalf("trace --json printed %q: %v", out.String(), err)
	}
	if !story.Found || len(story.Contacts) != 1 || len(story.Events) != 4 || story.Events[1].DeliveryID != 5 {
		t.Errorf("trace --json: %+v", story)
	}

	tests := []struct {
		args    []string
		wantErr error
		want    []string
	}{
		{[]string{"trace", "an@example.com"}, errUnknownContact, []string{
			`The bridge has never seen "an@example.com".`,
			"Closest known emails: ann@example.com, anne@example.com, bob@example.com, ann@example.org",
		}},
		{[]string{"trace", "zed@nowhere.test"}, errUnknownContact, []string{
			`The bridge has never seen "zed@nowhere.test".`, "No known email is close to it.",
		}},
		{[]string{"trace", "999"}, errUnknownContact, []string{`The bridge has never seen "999".`}},
		{[]string{"trace"}, errUsage, nil},
		{[]string{"trace", "a@b.c", "d@e.f"}, errUsage, nil},
	}
	for _, tt := range tests {
		out.Reset()
		err := run(ctx, tt.args, getenv, &out, &out)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%q: error %v, want %v", tt.args, err, tt.wantErr)
		}
		if tt.want == nil {
			continue
		}
		if got := strings.Split(strings.TrimSpace(out.String()), "\n"); !slices.Equal(got, tt.want) {
			t.Errorf("%q printed:\n%s\nwant:\n%s", tt.args, out.String(), strings.Join(tt.want, "\n"))
		}
	}
}

package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestCore: a verified body ends as it would on arrival whichever path
// brings it (the webhook, a replay): stored and queued, a duplicate the
// second time, a body that cannot be imported kept with its verdict and the
// reason, each dated when it arrived; a fault of ours is an error with its
// code, not a verdict.
func TestCore(t *testing.T) {
	ctx := context.Background()
	redisOpt, err := asynq.ParseRedisURI(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(redisOpt)
	t.Cleanup(func() { client.Close() })
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { ins.Close() })
	db := storetest.MySQL(t)
	lists := []string{"New Agents"}
	core := ingest.New(ingest.Config{Lists: lists, Logger: slog.New(slog.DiscardHandler)}, db, jobs.NewEnqueuer(client))
	arrived := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body, err := os.ReadFile("../hubspot/testdata/contact-profile.json")
	if err != nil {
		t.Fatal(err)
	}
	events := []byte(`[{"eventId":1,"subscriptionId":2,"portalId":62515,"occurredAt":1740830400000,"subscriptionType":"contact.creation","objectId":77}]`)

	steps := []struct {
		name    string
		body    []byte
		code    ingest.Code
		verdict string
		version int
	}{
		{"new contact", body, ingest.CodeAccepted, store.VerdictAccepted, 1},
		{"the same again", body, ingest.CodeDuplicate, store.VerdictDuplicate, 1},
		{"malformed", []byte(`{"email":`), ingest.CodeMalformed, store.VerdictMalformed, 0},
		{"no email", []byte(`{"hs_object_id":"9","firstname":"Ann"}`), ingest.CodeNoEmail, store.VerdictNoEmail, 0},
		{"a Webhooks API batch", events, ingest.CodeEvents, store.VerdictUnsupported, 0},
	}
	var enrollment int64
	for _, st := range steps {
		got, err := core.Ingest(ctx, st.body, hubspot.Verified{Version: hubspot.V3}, arrived)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got.Code != st.code || got.Verdict != st.verdict || got.Version != st.version || got.DeliveryID <= 0 {
			t.Errorf("%s: %+v, want code %s verdict %q version %d", st.name, got, st.code, st.verdict, st.version)
		}
		if got.Refused() != (got.Message != "") {
			t.Errorf("%s: refused %v with message %q: a refusal says why, nothing else does", st.name, got.Refused(), got.Message)
		}
		if enrollment == 0 {
			enrollment = got.EnrollmentID
		}
		d, err := db.GetDelivery(ctx, got.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if !d.ReceivedAt.Equal(arrived) || d.SignatureVersion != "v3" || (st.code != ingest.CodeEvents && !bytes.Equal(d.Body, st.body)) {
			t.Errorf("%s: delivery received %v signature %q, want dated when it arrived", st.name, d.ReceivedAt, d.SignatureVersion)
		}
	}
	groups, err := ins.Groups(jobs.Queue)
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for _, g := range groups {
		tasks, err := ins.ListAggregatingTasks(jobs.Queue, g.Group)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			queued = append(queued, task.ID)
		}
	}
	if want := []string{fmt.Sprintf("enrollment:%d:v1", enrollment)}; !slices.Equal(queued, want) {
		t.Errorf("queued %v, want %v", queued, want)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = core.Ingest(ctx, body, hubspot.Verified{Version: hubspot.V3}, arrived)
	var ie *ingest.Error
	if !errors.As(err, &ie) || ie.Code != ingest.CodeUnavailable {
		t.Errorf("with MySQL closed: %v, want an *ingest.Error with code unavailable", err)
	}
}

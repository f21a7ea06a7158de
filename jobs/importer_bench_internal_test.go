package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// discardCC is a CC that encodes each import body as the real client does
// and throws it away, so that a benchmark sees the body's allocation but no
// HTTP.
type discardCC struct {
	mu       sync.Mutex
	contacts int // in the last import
}

func (c *discardCC) ImportContacts(_ context.Context, req *ccclient.ImportRequest) (*ccclient.Activity, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	runtime.KeepAlive(body)
	c.mu.Lock()
	c.contacts = len(req.ImportData)
	c.mu.Unlock()
	return &ccclient.Activity{ActivityID: fmt.Sprintf("act-%d", time.Now().UnixNano()), State: "initialized"}, nil
}

func (c *discardCC) GetActivity(context.Context, string) (*ccclient.Activity, error) {
	return &ccclient.Activity{State: "completed"}, nil
}

func (c *discardCC) ContactListByName(_ context.Context, name string) (*ccclient.ContactList, error) {
	return &ccclient.ContactList{ListID: "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", Name: name}, nil
}

func (c *discardCC) CreateContactList(_ context.Context, name, _ string) (*ccclient.ContactList, error) {
	return c.ContactListByName(context.Background(), name)
}

func (c *discardCC) UpdatedEmails(context.Context, string, time.Time, int) (map[string]bool, bool, error) {
	return map[string]bool{}, true, nil
}

func (c *discardCC) CustomFields(context.Context) ([]ccclient.CustomField, error) { return nil, nil }

func (c *discardCC) CreateCustomField(_ context.Context, label string) (*ccclient.CustomField, error) {
	return &ccclient.CustomField{Name: label, Label: label}, nil
}

func (c *discardCC) RecentActivities(context.Context, int) ([]ccclient.Activity, error) {
	return nil, nil
}

func (c *discardCC) UnsubscribedEmails(context.Context, int) (map[string]bool, bool, error) {
	return map[string]bool{}, true, nil
}

// hubspotProperties are names HubSpot sends in an "include all properties"
// workflow body; benchProperties pads them with custom ones.
var hubspotProperties = []string{
	"email", "firstname", "lastname", "country", "city", "state", "zip", "address", "phone", "mobilephone",
	"company", "jobtitle", "website", "industry", "lifecyclestage", "hs_lead_status", "hubspot_owner_id",
	"createdate", "lastmodifieddate", "hs_object_id", "hs_analytics_source", "hs_analytics_source_data_1",
	"hs_analytics_source_data_2", "hs_analytics_first_url", "hs_analytics_num_page_views", "hs_analytics_num_visits",
	"hs_email_domain", "hs_email_optout", "hs_language", "hs_timezone", "hs_latest_source", "hs_persona",
	"num_conversion_events", "recent_conversion_event_name", "first_conversion_event_name", "ip_city",
	"ip_country", "ip_state", "hs_legal_basis", "notes_last_updated",
}

// benchProperties returns n HubSpot properties of contact i, with values of
// the lengths HubSpot typically has (ids, dates, URLs, short words).
func benchProperties(i, n int) map[string]string {
	p := make(map[string]string, n)
	for k := range n {
		name := fmt.Sprintf("agency_custom_property_%02d", k)
		if k < len(hubspotProperties) {
			name = hubspotProperties[k]
		}
		switch k % 4 {
		case 0:
			p[name] = fmt.Sprintf("%d", 51000000000+i*7+k)
		case 1:
			p[name] = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i+k) * time.Minute).Format(time.RFC3339Nano)
		case 2:
			p[name] = fmt.Sprintf("https://www.sunshine-travel.example.com/agents/%d/page-%d?utm_source=hubspot", i, k)
		default:
			p[name] = fmt.Sprintf("Value %d for agent %d", k, i)
		}
	}
	p["email"] = benchEmail(i)
	return p
}

func benchEmail(i int) string { return fmt.Sprintf("a%05d@travel.example", i) }

// ingestBench stores n enrollments with props properties each, as the
// webhook does, and returns their ids.
func ingestBench(b *testing.B, db *store.DB, n, props int, lists []string) []int64 {
	b.Helper()
	ctx := context.Background()
	ids := make([]int64, n)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				res, err := db.Ingest(ctx,
					&store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")},
					&store.Enrollment{PortalID: 1, ObjectKey: fmt.Sprint(i), Email: benchEmail(i), FirstName: fmt.Sprintf("Ag%d", i%1000),
						LastName: "Lee", Country: "US", Lists: lists, ContentHash: fmt.Sprintf("h%d", i), Properties: benchProperties(i, props)})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				ids[i] = res.EnrollmentID
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("ingest: %v", err)
	default:
	}
	return ids
}

// heapWatch samples the heap's live and not yet swept objects (what
// MemStats.HeapAlloc reports) until stopped, keeping the highest value seen.
// runtime/metrics is read rather than ReadMemStats because it does not stop
// the world, so sampling often does not slow the import it measures.
type heapWatch struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func watchHeap() *heapWatch {
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	w.peak = s[0].Value.Uint64()
	go func() {
		defer close(w.done)
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			w.peak = max(w.peak, s[0].Value.Uint64())
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the peak.
func (w *heapWatch) Stop() uint64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// heapNow is the heap's live bytes right after a full collection.
func heapNow() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkSubmitLargeImport measures what one full import costs the worker
// in memory: 40,000 pending rows of 60 HubSpot properties each are claimed
// (one row by the task, the rest by ExtendImport), mapped, fitted to CC's
// body limit and encoded, with a CC that discards the body. Besides
// -benchmem's totals it reports peak-heap-MB, the highest heap seen during
// the import above the heap before it: that, not the total allocated, is
// what sets the process's RSS. The number is sampled, so it varies by a few
// MB between runs; it is a measurement, not a limit the test enforces.
//
// It needs MySQL and Redis (see store/storetest); run it with e.g.
//
//	go test ./jobs -run '^$' -bench SubmitLargeImport -benchmem -benchtime 5x
func BenchmarkSubmitLargeImport(b *testing.B) {
	const rows, props = 40_000, 60
	ctx := context.Background()
	db := storetest.MySQL(b)
	opt, err := asynq.ParseRedisURI(storetest.RedisURL(b))
	if err != nil {
		b.Fatal(err)
	}
	aq := asynq.NewClient(opt)
	b.Cleanup(func() { aq.Close() })
	lists := []string{"Agents"}
	ids := ingestBench(b, db, rows, props, lists)
	cc := &discardCC{}
	im := newImporter(db, cc, NewEnqueuer(aq), slog.New(slog.DiscardHandler),
		Config{PollInterval: time.Minute, PollMaxInterval: time.Minute})

	var peaks float64
	var prev *store.Import
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if prev != nil {
			// Hand the last import's rows back so that this one claims all
			// of them again.
			if err := db.ReleaseRows(ctx, prev.ID, ids); err != nil {
				b.Fatal(err)
			}
		}
		imp, err := db.ClaimImport(ctx, fmt.Sprintf("bench-%d", n), GroupKey(lists), ids[:1])
		if err != nil || imp == nil {
			b.Fatalf("claim: %+v, %v", imp, err)
		}
		base := heapNow()
		w := watchHeap()
		b.StartTimer()
		err = im.submit(ctx, imp)
		b.StopTimer()
		peak := w.Stop()
		if err != nil {
			b.Fatalf("submit: %v", err)
		}
		peaks += float64(peak-min(base, peak)) / 1e6
		prev = imp
		n++
		b.StartTimer()
	}
	b.ReportMetric(peaks/float64(n), "peak-heap-MB")
	b.ReportMetric(float64(cc.contacts), "contacts-posted")
}

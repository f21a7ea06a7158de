package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
)

// largeProfile is what "Include all properties" sends for a contact with a
// long history: the contact-profile fixture with 300 more properties, each
// with its value history, about 600 KB. vid makes it a contact of its own.
func largeProfile(t testing.TB, vid int) []byte {
	t.Helper()
	b := profileWithHistory(t, vid, 300, 0)
	if len(b) < 550_000 || len(b) > 700_000 {
		t.Fatalf("the large profile is %d bytes, want about 600 KB", len(b))
	}
	return b
}

// historySources are where HubSpot says a property's values came from.
var historySources = []struct{ typ, id, user string }{
	{"FORM", `"a1b2c3d4-0000-4a5b-9c8d-0123456789ab"`, "null"},
	{"CRM_UI", `"userId:882761034"`, "882761034"},
	{"INTEGRATION", `"app:1234567"`, "null"},
	{"IMPORT", `"import:77123"`, "882761034"},
	{"CALCULATED", "null", "null"},
	{"API", "null", "null"},
}

// historyNames and historyValues make plausible travel-agent properties;
// some values are non-ASCII, as \u escapes, as the fixture's are.
var (
	historyNames = []string{"hs_analytics_source_data", "agency_note", "preferred_destination", "iata_number",
		"booking_volume", "hs_email_last_open_date", "commission_tier", "hs_latest_source", "languages_spoken", "consortium"}
	historyValues = []string{`Matkatoimisto Yll\u00e4s`, "Caribbean cruises and river cruises in Europe",
		"https://www.example.com/agents/join?utm_source=newsletter&utm_medium=email", "1700000000000", "gold",
		`\u00d8ster-Kallstr\u00f6m Matkat`, "42", "Independent", `Fran\u00e7ais, English, Suomi`, "PAID_SEARCH"}
)

// profileWithHistory is the contact-profile fixture, as contact vid, with
// props properties added before its own, or more until the body is at
// least minBytes long. Each property has 4 to 18 versions, newest first, in
// the shape of the fixture's own versions, all older than its own data.
func profileWithHistory(t testing.TB, vid, props, minBytes int) []byte {
	t.Helper()
	base := replaceOnce(t, profile(t), `"canonical-vid":101`, fmt.Sprintf(`"canonical-vid":%d`, vid))
	head, tail, ok := bytes.Cut(base, []byte(`"properties":{`))
	if !ok {
		t.Fatal("the fixture has no properties")
	}
	var b bytes.Buffer
	b.Write(head)
	b.WriteString(`"properties":{`)
	for i := 0; i < props || b.Len() < minBytes; i++ {
		value := func(v int) string { return historyValues[(i+v)%len(historyValues)] }
		fmt.Fprintf(&b, "\n  %q:{\"value\":\"%s\",\"versions\":[", fmt.Sprintf("%s_%d", historyNames[i%len(historyNames)], i), value(0))
		for v := range 4 + i*7%15 {
			src := historySources[(i+v)%len(historySources)]
			if v > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"value":"%s","source-type":"%s","source-id":%s,"source-label":null,"updated-by-user-id":%s,"timestamp":%d,"selected":false}`,
				value(v), src.typ, src.id, src.user, 1690000000000-int64(v)*86_400_000+int64(i))
		}
		b.WriteString("]},")
	}
	b.Write(tail)
	return b.Bytes()
}

// A signed contact with a long history is taken like any other: stored
// whole, every property kept, and its retry recognised.
func TestWebhookLargeProfile(t *testing.T) {
	a := start(t)
	body := largeProfile(t, 5001)
	got := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusAccepted)
	ds := a.deliveries(t)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	wantDelivery(t, ds[0], store.KindWorkflow, "v3", store.VerdictAccepted, got.ID, body)
	if ds[0].BodyLength != int64(len(body)) || ds[0].Header != nil {
		t.Errorf("delivery length %d headers %v, want %d and none", ds[0].BodyLength, ds[0].Header, len(body))
	}
	es := a.enrollments(t)
	if len(es) != 1 || es[0].ObjectKey != "5001" || es[0].Email != "Agent.Ylla@Example.com" {
		t.Fatalf("enrollments %+v", es)
	}
	if p := es[0].Properties; len(p) < 300 || p["consortium_299"] != "PAID_SEARCH" || p["agency_note_1"] != "Caribbean cruises and river cruises in Europe" {
		t.Errorf("%d properties stored; consortium_299 %q", len(p), p["consortium_299"])
	}
	a.wantTasks(t, taskID(got.ID, 1))

	again := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusOK)
	if again.ID != got.ID || !again.Duplicate {
		t.Errorf("retry %+v, want a duplicate of %d", again, got.ID)
	}
}

// overLimit is a contact-profile body of at least n bytes: a contact whose
// history outgrew the limit.
func overLimit(t testing.TB, n int) []byte {
	return profileWithHistory(t, 6001, 0, n)
}

// A body over the limit is answered 413 as before, but first recorded as a
// too_large delivery (unverified: its time, its size as declared and as
// read, the headers the quarantine keeps and its first 64 KiB), counted in
// the metrics; nothing is quarantined, parsed or queued.
func TestWebhookTooLarge(t *testing.T) {
	nine := overLimit(t, 9<<20)
	small := overLimit(t, 2<<20)
	// direct serves a request through the application without a network,
	// with a body the test controls byte by byte.
	direct := func(t testing.TB, a *app, body io.Reader, declared int64, h http.Header) reply {
		req := newRequest(nil, h)
		req.Body, req.ContentLength = io.NopCloser(body), declared
		rec := httptest.NewRecorder()
		a.echo.ServeHTTP(rec, req)
		return reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}
	cases := []struct {
		name  string
		limit int64 // the default when zero
		send  func(t testing.TB, a *app) (reply, []byte)
		// what the delivery must say
		length   int64
		atLeast  bool
		declared int64
		signed   bool
	}{
		{
			name: "9 MiB with its Content-Length, signed",
			send: func(t testing.TB, a *app) (reply, []byte) { return a.post(t, nine, sign(nine, hookPath)), nine },
			// Every byte is read, up to four times the limit, so the size is
			// exact.
			length: int64(len(nine)), declared: int64(len(nine)), signed: true,
		},
		{
			name:   "9 MiB chunked, so that only reading finds it too large",
			send:   func(t testing.TB, a *app) (reply, []byte) { return chunked(t, a, nine, sign(nine, hookPath)), nine },
			length: int64(len(nine)), signed: true,
		},
		{
			name:  "far over the limit, chunked: counting stops at four times the limit",
			limit: 256 << 10,
			send: func(t testing.TB, a *app) (reply, []byte) {
				return direct(t, a, bytes.NewReader(small), -1, sign(small, hookPath)), small
			},
			length: 4 * 256 << 10, atLeast: true, signed: true,
		},
		{
			name: "declared 1 GiB, 100 KB sent, then the connection broke",
			send: func(t testing.TB, a *app) (reply, []byte) {
				sent := small[:100_000]
				return direct(t, a, io.MultiReader(bytes.NewReader(sent), iotest.ErrReader(io.ErrUnexpectedEOF)), 1<<30, sign(small, hookPath)), sent
			},
			length: 100_000, atLeast: true, declared: 1 << 30, signed: true,
		},
		{
			name:  "declared over a small limit, fewer than 64 KiB sent",
			limit: 10 << 10,
			send: func(t testing.TB, a *app) (reply, []byte) {
				sent := small[:20_000]
				return direct(t, a, io.MultiReader(bytes.NewReader(sent), iotest.ErrReader(io.ErrUnexpectedEOF)), 5<<20, nil), sent
			},
			length: 20_000, atLeast: true, declared: 5 << 20,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			a := start(t, func(s *setup) {
				s.cfg.MaxBodyBytes = tc.limit
				s.cfg.WebhookMetrics = handlers.NewMetrics(reg)
			})
			r, sent := tc.send(t, a)
			wantError(t, r, http.StatusRequestEntityTooLarge, handlers.CodeBodyTooLarge)

			ds := a.deliveries(t)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries, want the one too_large", len(ds))
			}
			d := ds[0]
			head := sent[:min(len(sent), store.TooLargeHeadMax)]
			wantDelivery(t, d, store.KindUnknown, "", store.VerdictTooLarge, 0, head)
			if d.BodyLength != tc.length || d.BodyLengthAtLeast != tc.atLeast || d.DeclaredLength != tc.declared {
				t.Errorf("recorded length %d (at least %v), declared %d; want %d (%v), %d",
					d.BodyLength, d.BodyLengthAtLeast, d.DeclaredLength, tc.length, tc.atLeast, tc.declared)
			}
			if !strings.Contains(d.Reason, "limit") {
				t.Errorf("reason %q does not name the limit", d.Reason)
			}
			if d.Header == nil || (tc.signed && d.Header.Get("X-HubSpot-Signature-v3") == "") {
				t.Errorf("kept headers %v, want the signature's among them", d.Header)
			}
			for k := range d.Header {
				if !slices.ContainsFunc(store.KeptHeaders, func(kept string) bool { return strings.EqualFold(kept, k) }) {
					t.Errorf("kept header %s, which the quarantine does not keep", k)
				}
			}
			if e := a.enrollments(t); len(e) != 0 {
				t.Errorf("%d enrollments, want none", len(e))
			}
			if qs := a.quarantined(t); len(qs) != 0 {
				t.Errorf("%d quarantined, want none", len(qs))
			}
			a.wantTasks(t)
			if v := gather(t, reg).counter("hs2cc_webhook_requests_total", "outcome", handlers.OutcomeTooLarge); v != 1 {
				t.Errorf("too_large counted %v times, want once", v)
			}
			if !strings.Contains(a.logs.String(), "recorded as too_large") {
				t.Errorf("the record was not logged:\n%s", a.logs)
			}
		})
	}
}

// With MySQL unable to record bodies over the limit, each is still answered
// 413, within about the one-second bound the quarantine has too, and the
// failure is logged; a flood holds no more than a few connections.
func TestWebhookTooLargeRecordIsBounded(t *testing.T) {
	ctx := context.Background()
	a := start(t, func(s *setup) { s.cfg.MaxBodyBytes = 8 << 10 })
	conn, err := a.db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES deliveries WRITE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
		conn.Close()
	})
	body := largeProfile(t, 7001)[:100_000]
	const parallel = 8
	var wg sync.WaitGroup
	replies := make([]reply, parallel)
	took := make([]time.Duration, parallel)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			replies[i] = a.post(t, body, nil)
			took[i] = time.Since(began)
		}()
	}
	wg.Wait()
	for i, r := range replies {
		wantError(t, r, http.StatusRequestEntityTooLarge, handlers.CodeBodyTooLarge)
		if took[i] > 3*time.Second {
			t.Errorf("request %d answered after %v; the record must give up after about a second", i, took[i])
		}
	}
	if !strings.Contains(a.logs.String(), "could not record a webhook body over the limit") {
		t.Errorf("log does not name the failure:\n%s", a.logs)
	}
}

// A request that declares a large Content-Length costs what it sends, not
// what it declares, and a body that stops coming is never answered 2xx:
// nothing usable arrived, and the sender broke it off, so the answer is
// 400 incomplete_body, logged as a warning and counted as that rather than
// as a fault of ours, and nothing is stored.
func TestWebhookDeclaredLengthIsNotAllocated(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := start(t, func(s *setup) { s.cfg.WebhookMetrics = handlers.NewMetrics(reg) })
	body := profile(t)
	sent := body[:1024]
	h := sign(body, hookPath)

	t.Run("memory follows the bytes sent", func(t *testing.T) {
		// At the limit, so that the body is read rather than refused.
		declared := int64(handlers.DefaultMaxBodyBytes)
		aborted := func() {
			req := newRequest(nil, h)
			req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(sent), iotest.ErrReader(io.ErrUnexpectedEOF)))
			req.ContentLength = declared
			rec := httptest.NewRecorder()
			a.echo.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), handlers.CodeIncompleteBody) {
				t.Fatalf("status %d, want 400 incomplete_body: %s", rec.Code, rec.Body)
			}
		}
		aborted()
		const runs = 20
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			aborted()
		}
		runtime.ReadMemStats(&after)
		// TotalAlloc counts every byte allocated, freed or not, so a buffer
		// sized from the declared length would show 8 MiB a request.
		perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("%d bytes allocated per request declaring %d and sending %d", perRequest, declared, len(sent))
		if perRequest > 256<<10 {
			t.Errorf("%d bytes allocated per request that sent %d of a declared %d; want memory to follow the bytes sent",
				perRequest, len(sent), declared)
		}
	})

	// Through a real server with a read timeout, as serve runs: a sender
	// that stalls, hangs up mid-body or breaks the chunked encoding. The
	// timeouts are shortened from serve's 30 s, and the write timeout is
	// no longer than the read timeout, as serve's is not: by the time the
	// read deadline ends a stalled body, the write deadline has passed
	// too, and the answer is written only if the handler extends it.
	srv := httptest.NewUnstartedServer(a.echo)
	srv.Config.ReadTimeout = 500 * time.Millisecond
	srv.Config.WriteTimeout = 500 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	head := func(framing string) []byte {
		var req bytes.Buffer
		fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s\r\n",
			hookPath, srv.Listener.Addr(), framing)
		for k, vs := range h {
			fmt.Fprintf(&req, "%s: %s\r\n", k, vs[0])
		}
		req.WriteString("\r\n")
		return req.Bytes()
	}
	declared := fmt.Sprintf("Content-Length: %d", handlers.DefaultMaxBodyBytes)
	cases := []struct {
		name string
		send []byte
		stop func(c *net.TCPConn)
	}{
		{"a stalled upload", append(head(declared), sent...), func(*net.TCPConn) {}},
		{"an aborted upload", append(head(declared), sent...), func(c *net.TCPConn) { _ = c.CloseWrite() }},
		{"a malformed chunked body", append(head("Transfer-Encoding: chunked"), "8\r\n{\"vid\":1\r\nzz\r\n}\r\n"...),
			func(*net.TCPConn) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := gather(t, reg).counter("hs2cc_webhook_requests_total", "outcome", handlers.OutcomeIncompleteBody)
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			tc.stop(c.(*net.TCPConn))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), handlers.CodeIncompleteBody) {
				t.Errorf("answered %d %s, want 400 incomplete_body", resp.StatusCode, got)
			}
			a.wantNothingStored(t)
			m := gather(t, reg)
			if v := m.counter("hs2cc_webhook_requests_total", "outcome", handlers.OutcomeIncompleteBody); v != before+1 {
				t.Errorf("incomplete_body counted %v times more, want once", v-before)
			}
			if v := m.counter("hs2cc_webhook_requests_total", "outcome", handlers.OutcomeUnavailable); v != 0 {
				t.Errorf("unavailable counted %v times: a broken upload is not our fault", v)
			}
		})
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "code=incomplete_body") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("want broken uploads logged as warnings, never as errors:\n%s", logs)
	}
}

// BenchmarkWebhookLargeBodies posts 50 signed 600 KB contact profiles at
// once through the application on MariaDB and Redis, over HTTP as serve
// takes them, each a new contact; one operation is one such round. Beside
// the bytes allocated per round it reports the heap the round adds at its
// peak over what was live before it (heap-peak-MB), the peak of the memory
// the Go runtime holds from the OS (go-mem-peak-MB, the in-process measure
// nearest RSS, which includes the test's own 30 MB of bodies), and the
// process's peak RSS (rss-peak-MB, from /proc, for the whole run). "serve
// stays under 150 MB RSS with 50 of them in flight" is read off these.
func BenchmarkWebhookLargeBodies(b *testing.B) {
	const inFlight = 50
	a := start(b, func(s *setup) { s.cfg.Logger = slogDiscard() })
	tr := &http.Transport{MaxIdleConnsPerHost: inFlight}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	type signed struct {
		body []byte
		h    http.Header
	}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	read := func() (heap, held uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64() - samples[2].Value.Uint64()
	}
	var heapPeak, heldPeak uint64
	vid := 100_000
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		round := make([]signed, inFlight)
		for i := range round {
			vid++
			body := profileWithHistory(b, vid, 300, 0)
			round[i] = signed{body: body, h: sign(body, hookPath)}
		}
		runtime.GC()
		baseline, _ := read()
		var done atomic.Bool
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for !done.Load() {
				heap, held := read()
				heapPeak = max(heapPeak, heap-min(heap, baseline))
				heldPeak = max(heldPeak, held)
				time.Sleep(time.Millisecond)
			}
		}()
		b.StartTimer()

		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for _, s := range round {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest(http.MethodPost, a.srv.URL+hookPath, bytes.NewReader(s.body))
				if err != nil {
					errs <- err
					return
				}
				for k, v := range s.h {
					req.Header[k] = v
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				reply, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("status %d: %s", resp.StatusCode, reply)
				}
			}()
		}
		wg.Wait()

		b.StopTimer()
		done.Store(true)
		<-sampled
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(heapPeak)/(1<<20), "heap-peak-MB")
	b.ReportMetric(float64(heldPeak)/(1<<20), "go-mem-peak-MB")
	if rss, ok := peakRSS(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "rss-peak-MB")
	}
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, where Linux
// reports it.
func peakRSS() (uint64, bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

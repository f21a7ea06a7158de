package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hs2cc/hs2cc/handlers"
)

// gathered is one scrape of a registry, by metric name.
type gathered map[string]*dto.MetricFamily

func gather(t testing.TB, reg *prometheus.Registry) gathered {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := gathered{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// counter is the value of name's series whose label label has value; -1
// when there is none.
func (g gathered) counter(name, label, value string) float64 {
	for _, m := range g[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// samples is how many observations the unlabelled histogram name holds.
func (g gathered) samples(name string) uint64 {
	ms := g[name].GetMetric()
	if len(ms) != 1 {
		return 0
	}
	return ms[0].GetHistogram().GetSampleCount()
}

// Every webhook request is counted once, by its outcome, and its answer is
// timed.
func TestWebhookMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := start(t, func(s *setup) { s.cfg.WebhookMetrics = handlers.NewMetrics(reg) })
	body := profile(t)

	// Before any request every known outcome is there at zero, so that a
	// rate over it is 0 rather than absent.
	g := gather(t, reg)
	for _, o := range []string{"accepted", "duplicate", "stale", "webhooks_api", "bad_signature", "malformed", "no_email", "unavailable"} {
		if v := g.counter("hs2cc_webhook_requests_total", "outcome", o); v != 0 {
			t.Errorf("outcome %s starts at %v, want 0", o, v)
		}
	}

	steps := []struct {
		name    string
		send    func() reply
		status  int
		outcome string
	}{
		{"a new contact", func() reply { return a.post(t, body, sign(body, hookPath)) }, http.StatusAccepted, "accepted"},
		{"the same again", func() reply { return a.post(t, body, sign(body, hookPath)) }, http.StatusOK, "duplicate"},
		{"a forged signature", func() reply {
			return a.post(t, body, sign([]byte(`{"other":"body"}`), hookPath))
		}, http.StatusUnauthorized, "bad_signature"},
		{"a Webhooks API batch", func() reply {
			b := []byte(`[{"eventId":100,"subscriptionId":7,"portalId":62515,"appId":1,"occurredAt":1700000000000,` +
				`"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeFlag":"CREATED","changeSource":"CRM"}]`)
			return a.post(t, b, sign(b, hookPath))
		}, http.StatusOK, "webhooks_api"},
		{"a body that is not JSON", func() reply {
			b := []byte(`{"vid": 1,`)
			return a.post(t, b, sign(b, hookPath))
		}, http.StatusBadRequest, "malformed"},
	}
	want := map[string]float64{}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := st.send()
			if r.status != st.status {
				t.Fatalf("status %d, want %d: %s", r.status, st.status, r.body)
			}
			want[st.outcome]++
			g := gather(t, reg)
			for o, n := range want {
				if v := g.counter("hs2cc_webhook_requests_total", "outcome", o); v != n {
					t.Errorf("hs2cc_webhook_requests_total{outcome=%q} = %v, want %v", o, v, n)
				}
			}
			if n := g.samples("hs2cc_webhook_ack_seconds"); n != uint64(i+1) {
				t.Errorf("hs2cc_webhook_ack_seconds holds %d observations, want %d", n, i+1)
			}
		})
	}
}

// With a token set, /metrics answers only a caller that presents it.
func TestMetricsBearerToken(t *testing.T) {
	const token = "scrape-token-Qm27"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hs2cc_up 1\n")
	})
	cases := []struct {
		name   string
		token  string // configured
		auth   string // the Authorization header sent
		status int
	}{
		{"no token configured, none sent", "", "", http.StatusOK},
		{"token configured, none sent", token, "", http.StatusUnauthorized},
		{"wrong token", token, "Bearer not-the-token", http.StatusUnauthorized},
		{"a prefix of the token", token, "Bearer " + token[:5], http.StatusUnauthorized},
		{"the token as basic auth", token, "Basic " + token, http.StatusUnauthorized},
		{"the token", token, "Bearer " + token, http.StatusOK},
		{"the scheme in lower case", token, "bearer " + token, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := startHTTP(t, nil, func(c *handlers.Config) { c.Metrics, c.MetricsToken = metrics, tc.token })
			req := a.request(t, http.MethodGet, "/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			r := a.do(t, req)
			if tc.status == http.StatusUnauthorized {
				wantError(t, r, tc.status, handlers.CodeUnauthorized)
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("WWW-Authenticate %q, want a bearer challenge", got)
				}
				return
			}
			if r.status != tc.status || string(r.body) != "hs2cc_up 1\n" {
				t.Errorf("status %d body %q", r.status, r.body)
			}
		})
	}

	// BearerOnly guards the listeners outside the Echo application alike.
	for _, tc := range cases {
		t.Run("BearerOnly: "+tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			handlers.BearerOnly(tc.token, metrics).ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
		})
	}
}

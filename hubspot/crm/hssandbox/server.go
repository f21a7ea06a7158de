package hssandbox

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Missing-id modes, the two readings of how HubSpot answers a batch update
// naming contacts it does not have.
const (
	// MissingMultiStatus, the default, answers 207 with the found contacts
	// updated and an OBJECT_NOT_FOUND error naming the others in
	// context.ids.
	MissingMultiStatus = "multi_status"
	// MissingRefuse refuses the whole batch with a 400 OBJECT_NOT_FOUND
	// naming the missing ids in context.ids; nothing is updated.
	MissingRefuse = "refuse"
	// MissingRefuseMessage refuses like MissingRefuse but names the ids only
	// in the message, for clients that must read them from there.
	MissingRefuseMessage = "refuse_message"
)

// Defaults, HubSpot's limits for a Free/Starter private app.
const (
	DefaultToken = "sandbox-hubspot-token"
	DefaultRate  = 100
	DefaultDaily = 250000
	// Window is HubSpot's rolling window for the secondly limit.
	Window = 10 * time.Second
)

// Options configures a Server; the zero value behaves like HubSpot for a
// Free/Starter private app with DefaultToken.
type Options struct {
	// Token is the private app token the sandbox accepts.
	Token string
	// Rate is the requests per rolling 10 s, DefaultRate by default; a
	// negative value disables the limit.
	Rate int
	// Daily is the requests per UTC day, DefaultDaily by default; a
	// negative value disables the limit.
	Daily int
	// OmitRetryAfter leaves the Retry-After header out of 429s; whether
	// HubSpot sends it is unconfirmed.
	OmitRetryAfter bool
	// Missing is MissingMultiStatus (the default), MissingRefuse or
	// MissingRefuseMessage.
	Missing string
	// FailRate and ThrottleRate are the initial Faults.
	FailRate, ThrottleRate float64
	// Seed seeds the random faults; zero picks one from the clock.
	Seed uint64
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Logger receives one line per notable event; nothing is logged if nil.
	Logger *slog.Logger
}

// Faults are injected at random into admitted API calls.
type Faults struct {
	// FailRate is the chance, from 0 to 1, that a call fails with a 500 or
	// 502, as HubSpot's backend now and then does.
	FailRate float64
	// ThrottleRate is the chance, from 0 to 1, that a call gets the
	// secondly 429 whatever the window holds, as when other apps of the
	// account share the limit.
	ThrottleRate float64
}

func (f Faults) validate() error {
	for name, p := range map[string]float64{"FailRate": f.FailRate, "ThrottleRate": f.ThrottleRate} {
		// The negated test also refuses NaN.
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("hssandbox: %s %v: want a probability from 0 to 1", name, p)
		}
	}
	return nil
}

// Server is an in-memory HubSpot CRM API. All state sits behind one mutex.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand
	recent   []time.Time // admitted calls in the rolling window, oldest first
	day      string      // UTC date that used counts
	used     int
	groups   []group
	props    map[string]property
	deleted  map[string]bool
	contacts map[string]map[string]string // only contacts that were written
	stats    map[string]map[int]int       // "METHOD pattern" → status → count
}

// New returns a Server, or an error for an option it does not know.
func New(o Options) (*Server, error) {
	switch o.Missing {
	case "":
		o.Missing = MissingMultiStatus
	case MissingMultiStatus, MissingRefuse, MissingRefuseMessage:
	default:
		return nil, fmt.Errorf("hssandbox: missing mode %q: want %q, %q or %q", o.Missing, MissingMultiStatus, MissingRefuse, MissingRefuseMessage)
	}
	f := Faults{FailRate: o.FailRate, ThrottleRate: o.ThrottleRate}
	if err := f.validate(); err != nil {
		return nil, err
	}
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Daily == 0 {
		o.Daily = DefaultDaily
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	s := &Server{
		opts:     o,
		faults:   f,
		rng:      rand.New(rand.NewPCG(o.Seed, 0x6873_7362_6f78)), // "hssbox"
		props:    map[string]property{},
		deleted:  map[string]bool{},
		contacts: map[string]map[string]string{},
		stats:    map[string]map[int]int{},
	}
	s.builtins()
	s.routes()
	return s, nil
}

// Token returns the private app token the sandbox accepts.
func (s *Server) Token() string { return s.opts.Token }

// SetFaults replaces the random faults.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	api := map[string]func(http.ResponseWriter, *http.Request){
		"GET /crm/v3/properties/contacts/groups":     s.listGroups,
		"POST /crm/v3/properties/contacts/groups":    s.createGroup,
		"GET /crm/v3/properties/contacts/{name}":     s.getProperty,
		"POST /crm/v3/properties/contacts":           s.createProperty,
		"POST /crm/v3/objects/contacts/batch/update": s.batchUpdate,
		"DELETE /crm/v3/objects/contacts/{id}":       s.deleteContact,
	}
	for pattern, h := range api {
		s.mux.Handle(pattern, s.gate(h))
	}
	s.mux.HandleFunc("GET /sandbox/contacts", s.sandboxContacts)
	s.mux.HandleFunc("GET /sandbox/stats", s.sandboxStats)
	s.mux.HandleFunc("POST /sandbox/faults", s.sandboxFaults)
	s.mux.Handle("/crm/", s.gate(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "hssandbox: no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	}))
}

// ServeHTTP serves the API and the /sandbox test hooks.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// statusWriter remembers the status written, for the stats.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// gate checks auth, the limits and the random faults before h, and counts
// the answer in the stats.
func (s *Server) gate(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { s.count(r.Pattern, sw.status) }()
		if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
			writeError(sw, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
				"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
			return
		}
		if s.admit(sw) {
			h(sw, r)
		}
	})
}

func (s *Server) count(pattern string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stats[pattern]
	if m == nil {
		m = map[int]int{}
		s.stats[pattern] = m
	}
	m[status]++
}

// admit applies the daily limit, the random throttle, the rolling window
// and the random failure, in that order, and writes the refusal if there is
// one. A refused call is not counted against the limits.
func (s *Server) admit(w http.ResponseWriter) bool {
	s.mu.Lock()
	now := s.opts.Now()
	policy, wait := s.limitLocked(now)
	fail := policy == "" && s.chanceLocked(s.faults.FailRate)
	status := http.StatusInternalServerError
	if fail && s.rng.IntN(2) == 0 {
		status = http.StatusBadGateway
	}
	s.headersLocked(w.Header(), now)
	s.mu.Unlock()
	switch {
	case policy != "":
		s.opts.Logger.Info("hssandbox: rate limited", "policy", policy, "wait", wait)
		if !s.opts.OmitRetryAfter {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		}
		writeRateLimit(w, policy)
		return false
	case fail:
		s.opts.Logger.Info("hssandbox: injected failure", "status", status)
		writeError(w, status, "INTERNAL_ERROR", "hssandbox: injected backend failure", nil)
		return false
	}
	return true
}

// limitLocked returns the policy that refuses a call at now and how long to
// wait, or "" after counting the call.
func (s *Server) limitLocked(now time.Time) (string, time.Duration) {
	if day := now.UTC().Format(time.DateOnly); day != s.day {
		s.day, s.used = day, 0
	}
	if s.opts.Daily > 0 && s.used >= s.opts.Daily {
		u := now.UTC()
		return "DAILY", time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC).Sub(u)
	}
	if s.chanceLocked(s.faults.ThrottleRate) {
		return "TEN_SECONDLY_ROLLING", Window
	}
	cut := 0
	for cut < len(s.recent) && !s.recent[cut].After(now.Add(-Window)) {
		cut++
	}
	s.recent = s.recent[cut:]
	if s.opts.Rate > 0 && len(s.recent) >= s.opts.Rate {
		return "TEN_SECONDLY_ROLLING", s.recent[0].Add(Window).Sub(now)
	}
	s.recent = append(s.recent, now)
	s.used++
	return "", 0
}

// headersLocked sets HubSpot's rate-limit headers.
func (s *Server) headersLocked(h http.Header, now time.Time) {
	if s.opts.Rate > 0 {
		h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(s.opts.Rate))
		h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(0, s.opts.Rate-len(s.recent))))
		h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.Itoa(int(Window/time.Millisecond)))
	}
	if s.opts.Daily > 0 {
		h.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(s.opts.Daily))
		h.Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(0, s.opts.Daily-s.used)))
	}
}

// chanceLocked reports true with probability p, drawing nothing when p is
// zero so that a fault switched off leaves the other's sequence unchanged.
func (s *Server) chanceLocked(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return s.rng.Float64() < p
}

// Contact is a contact as GET /sandbox/contacts lists it.
type Contact struct {
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

// Contacts returns the contacts that were written, by id.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.contacts))
	for id, p := range s.contacts {
		cp := make(map[string]string, len(p))
		for k, v := range p {
			cp[k] = v
		}
		out = append(out, Contact{ID: id, Properties: cp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats returns the request counts per "METHOD pattern" and status.
func (s *Server) Stats() map[string]map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[int]int, len(s.stats))
	for k, m := range s.stats {
		cp := make(map[int]int, len(m))
		for st, n := range m {
			cp[st] = n
		}
		out[k] = cp
	}
	return out
}

func (s *Server) sandboxContacts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"contacts": s.Contacts()})
}

// sandboxFaults replaces the random faults while the sandbox runs, as
// ccsandbox's hook of the same name does, so that a chaos run can start
// and stop HubSpot's failures without a restart.
func (s *Server) sandboxFaults(w http.ResponseWriter, r *http.Request) {
	var f struct {
		FailRate     float64 `json:"fail_rate"`
		ThrottleRate float64 `json:"throttle_rate"`
	}
	if !decode(w, r, &f) {
		return
	}
	if err := s.SetFaults(Faults{FailRate: f.FailRate, ThrottleRate: f.ThrottleRate}); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) sandboxStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"requests": s.Stats()})
}

package ccsandbox

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Refresh-token modes, as CC lets each app choose in its developer portal.
const (
	// RefreshRotating returns a new refresh token on every refresh and kills all
	// older ones, so each refresh token works exactly once.
	RefreshRotating = "rotating"
	// RefreshLongLived returns the same refresh token on every refresh.
	RefreshLongLived = "long_lived"
)

// Oversize modes decide what happens to an import body above MaxImportBytes.
const (
	// OversizeTruncate imports only the contacts that fit wholly in the first
	// MaxImportBytes bytes and still answers 201, as CC documents.
	OversizeTruncate = "truncate"
	// OversizeReject answers 400 instead, for tests that want the loud failure.
	OversizeReject = "reject"
)

// Reject-detail modes decide what activity_errors says about the rows
// RejectRate refuses. CC's exact wording is unconfirmed (the spec only types
// activity_errors as strings, and CC is known to report bare counts), so a
// client can be tested against each.
const (
	// RejectDetailLineEmail, the default, reports each refused row as
	// "Line N: <email>: <message>", N being the row's 1-based position in
	// import_data.
	RejectDetailLineEmail = "line_email"
	// RejectDetailEmail reports each refused row as "<email>: <message>",
	// without its position.
	RejectDetailEmail = "email"
	// RejectDetailCount reports refused rows in status.error_count only,
	// with nothing in activity_errors to say which rows they were.
	RejectDetailCount = "count"
)

// Defaults for the zero Options, taken from the CC fact sheet.
const (
	DefaultClientID       = "sandbox-client"
	DefaultClientSecret   = "sandbox-secret"
	DefaultTokenTTL       = 24 * time.Hour
	DefaultRefreshIdleTTL = 180 * 24 * time.Hour
	DefaultRateLimit      = 4
	DefaultTokenRateLimit = 1
	DefaultDailyQuota     = 10000
	DefaultActivityDelay  = 500 * time.Millisecond
	DefaultMaxImportBytes = 4_000_000
)

// Options configures a Server. The zero value behaves like CC as the fact
// sheet describes it; every behaviour the sheet marks unconfirmed has a knob.
type Options struct {
	// ClientID and ClientSecret are the one OAuth client (API key) the sandbox
	// knows. They default to DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string
	// TokenTTL is the access-token lifetime, 24h by default.
	TokenTTL time.Duration
	// RefreshMode is RefreshRotating (the default) or RefreshLongLived.
	RefreshMode string
	// RefreshIdleTTL expires a refresh token that has not been used for this
	// long; 180 days by default.
	RefreshIdleTTL time.Duration
	// RevokeFamilyOnReuse makes a second use of a rotated refresh token kill
	// the whole chain, including the newest token. CC support describes a
	// double refresh as needing a fresh consent, which this reproduces; it is
	// off by default because the fact sheet only confirms that old tokens die.
	RevokeFamilyOnReuse bool
	// AllowClientSecretPost accepts client_id and client_secret in the token
	// request body instead of Basic auth. Whether CC does is unconfirmed.
	AllowClientSecretPost bool
	// TokenRateLimit is the token endpoint's requests per second, 1 by
	// default; 0 uses the default and a negative value disables the limit.
	TokenRateLimit float64
	// RateLimit is the API requests per second per client (token bucket with
	// a burst of the same size), 4 by default; 0 uses the default and a
	// negative value disables the limit.
	RateLimit float64
	// DailyQuota is the number of API calls per client per UTC day, 10,000 by
	// default; 0 uses the default and a negative value disables the quota.
	DailyQuota int
	// ActivityDelay is how long an import stays initialized and then
	// processing (half each) before it completes; 500ms by default. A
	// negative value completes an import on the first read after it.
	ActivityDelay time.Duration
	// MaxImportBytes is the import body size CC reads, 4,000,000 by default.
	MaxImportBytes int
	// OversizeMode is OversizeTruncate (the default) or OversizeReject.
	OversizeMode string
	// EmptyStringClears makes an import value of "" clear the field. CC's
	// behaviour is unconfirmed, so by default "" leaves the field unchanged.
	EmptyStringClears bool
	// CaseInsensitiveListNames makes list names unique and matched without
	// regard to case. CC's behaviour is unconfirmed; the default is exact.
	CaseInsensitiveListNames bool
	// FailRate is the chance, from 0 to 1, that an API call the gateway has
	// admitted (token, scope, quota and rate limit all passed) fails with a
	// 500 or 503 anyway, as CC's backend now and then does. Such a call has
	// already been charged to the daily quota, because the gateway counts a
	// call before the backend answers. It is the initial Faults.FailRate.
	FailRate float64
	// ThrottleRate is the chance, from 0 to 1, that an API call within the
	// daily quota is answered with the per-second 429 (throttled) whatever
	// the token bucket holds, as when other processes share the API key. A
	// throttled call is not charged to the quota. It is the initial
	// Faults.ThrottleRate.
	ThrottleRate float64
	// RejectRate is the share, from 0 to 1, of the rows of each import that
	// CC refuses row by row, as it does with addresses it will not take:
	// the import still completes, but each refused row creates or changes
	// no contact, joins no list, counts in status.error_count and, unless
	// RejectDetail is RejectDetailCount, has one line in activity_errors.
	// Rows already held as correctable are never drawn. Which rows are
	// refused is drawn when the import is queued. It is the initial
	// Faults.RejectRate.
	RejectRate float64
	// RejectDetail is how activity_errors reports refused rows:
	// RejectDetailLineEmail (the default), RejectDetailEmail or
	// RejectDetailCount. It is the initial Faults.RejectDetail.
	RejectDetail string
	// DropRate is the chance, from 0 to 1, that an API call the gateway has
	// admitted is carried out in full (an import queued, a list created)
	// and then loses its answer: the connection is closed before a byte of
	// the response is written, as when a timeout or a reset swallows CC's
	// answer. It is the initial Faults.DropRate.
	DropRate float64
	// Seed seeds the random source behind FailRate, ThrottleRate,
	// RejectRate and DropRate, so that a run with the same seed and the
	// same sequence of calls meets the same faults. Zero picks a seed from
	// the wall clock; Server.Seed reports it.
	Seed uint64
	// Now is the clock; time.Now by default. Tests inject a fake one to move
	// tokens, limits, quotas and imports through time.
	Now func() time.Time
	// Logger receives one line per notable event; nothing is logged if nil.
	Logger *slog.Logger
}

// Validate reports the first option that New would refuse.
func (o Options) Validate() error {
	switch o.RefreshMode {
	case "", RefreshRotating, RefreshLongLived:
	default:
		return fmt.Errorf("ccsandbox: refresh mode %q: want %q or %q", o.RefreshMode, RefreshRotating, RefreshLongLived)
	}
	switch o.OversizeMode {
	case "", OversizeTruncate, OversizeReject:
	default:
		return fmt.Errorf("ccsandbox: oversize mode %q: want %q or %q", o.OversizeMode, OversizeTruncate, OversizeReject)
	}
	if o.TokenTTL < 0 || o.RefreshIdleTTL < 0 || o.MaxImportBytes < 0 {
		return errors.New("ccsandbox: TokenTTL, RefreshIdleTTL and MaxImportBytes must not be negative")
	}
	if err := validRejectDetail(o.RejectDetail); err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		p    float64
	}{{"FailRate", o.FailRate}, {"ThrottleRate", o.ThrottleRate}, {"RejectRate", o.RejectRate}, {"DropRate", o.DropRate}} {
		if err := validRate(r.name, r.p); err != nil {
			return err
		}
	}
	return nil
}

// withDefaults fills every zero field with CC's documented value.
func (o Options) withDefaults() Options {
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = DefaultClientSecret
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.RefreshMode == "" {
		o.RefreshMode = RefreshRotating
	}
	if o.RefreshIdleTTL == 0 {
		o.RefreshIdleTTL = DefaultRefreshIdleTTL
	}
	if o.TokenRateLimit == 0 {
		o.TokenRateLimit = DefaultTokenRateLimit
	}
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.DailyQuota == 0 {
		o.DailyQuota = DefaultDailyQuota
	}
	if o.ActivityDelay == 0 {
		o.ActivityDelay = DefaultActivityDelay
	}
	if o.ActivityDelay < 0 {
		o.ActivityDelay = 0
	}
	if o.MaxImportBytes == 0 {
		o.MaxImportBytes = DefaultMaxImportBytes
	}
	if o.OversizeMode == "" {
		o.OversizeMode = OversizeTruncate
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
	return o
}

// Server is an in-memory Constant Contact: the OAuth server under
// /oauth2/default/v1, the v3 endpoints the bridge uses under /v3, and test
// hooks under /sandbox. All state sits behind one mutex, so a Server is safe
// for any number of concurrent requests.
type Server struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux

	mu     sync.Mutex
	offset time.Duration // added to opts.Now by Advance
	faults Faults
	stats  Stats
	rng    *rand.Rand // draws the random faults; seeded by opts.Seed

	// OAuth state, see oauth.go.
	codes       map[string]*authCode
	devices     map[string]*deviceGrant
	access      map[string]*accessToken
	refresh     map[string]*refreshToken
	tokenBucket *bucket

	// Per-client limits, see limits.go.
	limits map[string]*clientLimits

	// Account data, see lists.go, contacts.go and activities.go.
	lists        []*contactList
	listByID     map[string]*contactList
	fields       []*customField
	fieldByName  map[string]*customField
	contacts     []*contact
	byEmail      map[string]*contact
	bySMS        map[string]*contact
	activities   []*activity // creation order
	activityByID map[string]*activity
	pending      []*activity // not yet in a final state, creation order
}

// New returns a Server configured by opts. It panics if opts.Validate fails,
// because a sandbox that silently ran with other rules would mislead tests.
func New(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts = opts.withDefaults()
	s := &Server{
		opts:         opts,
		log:          opts.Logger,
		mux:          http.NewServeMux(),
		codes:        map[string]*authCode{},
		devices:      map[string]*deviceGrant{},
		access:       map[string]*accessToken{},
		refresh:      map[string]*refreshToken{},
		limits:       map[string]*clientLimits{},
		listByID:     map[string]*contactList{},
		fieldByName:  map[string]*customField{},
		byEmail:      map[string]*contact{},
		bySMS:        map[string]*contact{},
		activityByID: map[string]*activity{},
		stats:        Stats{Requests: map[string]int{}, TokenGrants: map[string]int{}},
		faults: Faults{
			FailRate: opts.FailRate, ThrottleRate: opts.ThrottleRate,
			RejectRate: opts.RejectRate, RejectDetail: opts.RejectDetail, DropRate: opts.DropRate,
		},
		rng: newRand(opts.Seed),
	}
	if opts.TokenRateLimit > 0 {
		s.tokenBucket = newBucket(opts.TokenRateLimit)
	}
	if opts.FailRate > 0 || opts.ThrottleRate > 0 || opts.RejectRate > 0 || opts.DropRate > 0 {
		// The seed is logged so that a failure seen in `hs2cc dev` or in a
		// test log can be replayed with the same faults.
		s.log.Info("ccsandbox: random faults on", "fail_rate", opts.FailRate, "throttle_rate", opts.ThrottleRate,
			"reject_rate", opts.RejectRate, "drop_rate", opts.DropRate, "seed", opts.Seed)
	}
	s.routes()
	return s
}

// routes registers every endpoint. The pattern string doubles as the key of
// Stats.Requests, so a test can count exactly the calls it cares about.
func (s *Server) routes() {
	s.handleOAuth("GET /oauth2/default/v1/authorize", s.authorize)
	s.handleOAuth("POST /oauth2/default/v1/token", s.token)
	s.handleOAuth("POST /oauth2/default/v1/device/authorize", s.deviceAuthorize)
	s.handleOAuth("GET /oauth2/default/v1/device", s.devicePage)

	s.handleAPI("GET /v3/contact_lists", s.getLists)
	s.handleAPI("POST /v3/contact_lists", s.postList)
	s.handleAPI("DELETE /v3/contact_lists/{list_id}", s.deleteList)
	s.handleAPI("GET /v3/contact_custom_fields", s.getCustomFields)
	s.handleAPI("POST /v3/contact_custom_fields", s.postCustomField)
	s.handleAPI("POST /v3/activities/contacts_json_import", s.postImport)
	s.handleAPI("POST /v3/activities/remove_list_memberships", s.postRemoveListMemberships)
	s.handleAPI("GET /v3/activities/{id}", s.getActivity)
	s.handleAPI("GET /v3/activities", s.getActivities)
	s.handleAPI("GET /v3/contacts", s.getContacts)

	s.mux.HandleFunc("GET /sandbox/contacts", s.hookContacts)
	s.mux.HandleFunc("GET /sandbox/stats", s.hookStats)
	s.mux.HandleFunc("POST /sandbox/unsubscribe", s.hookUnsubscribe)
	s.mux.HandleFunc("POST /sandbox/lists", s.hookCreateList)
	s.mux.HandleFunc("POST /sandbox/custom_fields", s.hookCreateCustomField)
	s.mux.HandleFunc("GET /sandbox/faults", s.hookGetFaults)
	s.mux.HandleFunc("PUT /sandbox/faults", s.hookSetFaults)
	s.mux.HandleFunc("POST /sandbox/faults", s.hookPatchFaults)
	s.mux.HandleFunc("GET /sandbox/clock", s.hookClock)
	s.mux.HandleFunc("POST /sandbox/clock", s.hookAdvanceClock)
	s.mux.HandleFunc("POST /sandbox/token", s.hookIssueToken)
	s.mux.HandleFunc("POST /sandbox/expire-tokens", s.hookExpireTokens)

	s.mux.HandleFunc("/", s.notFound)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// handleOAuth registers an authorization-server endpoint, counting each call.
func (s *Server) handleOAuth(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Requests[pattern]++
		s.mu.Unlock()
		h(w, r)
	})
}

// handleAPI registers a /v3 endpoint behind the same gate CC's API gateway
// applies to every call: bearer token, rate limit, daily quota, scope, and
// then any injected fault, including a dropped answer.
func (s *Server) handleAPI(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		// CC sits behind AWS API Gateway, whose request id is the only
		// correlation id a client can log.
		w.Header().Set("x-amzn-RequestId", newUUID())
		run, drop := s.admit(w, r, pattern)
		switch {
		case !run:
		case drop:
			s.dropAnswer(w, r, pattern, h)
		default:
			h(w, r)
		}
	})
}

// dropAnswer carries out an API call in full and then closes the connection
// without answering, the way a client timeout or a connection reset loses
// CC's answer to a call CC has already acted on. The handler writes into a
// discarding writer, so nothing can reach the client before the close.
func (s *Server) dropAnswer(w http.ResponseWriter, r *http.Request, pattern string, h http.HandlerFunc) {
	dw := &discardWriter{header: http.Header{}}
	h(dw, r)
	s.log.Info("ccsandbox: answer dropped", "route", pattern, "status", dw.status)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// The connection cannot be taken over (HTTP/2, or a middleware
		// that hides it). Aborting the handler makes net/http close the
		// connection or reset the stream with no response, which the
		// client sees the same way.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// discardWriter is the ResponseWriter of a call whose answer is dropped: it
// keeps the status for the log and throws the body away.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.header }

func (d *discardWriter) WriteHeader(status int) {
	if d.status == 0 {
		d.status = status
	}
}

func (d *discardWriter) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(b), nil
}

// notFound answers any route the sandbox does not serve, in CC's array shape,
// and counts it so that a client calling a wrong path shows up in Stats.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests["unmatched"]++
	s.mu.Unlock()
	s.log.Warn("ccsandbox: unmatched route", "method", r.Method, "path", r.URL.Path)
	writeError(w, http.StatusNotFound, keyNotFound, "The requested resource was not found: "+r.Method+" "+r.URL.Path)
}

// nowLocked is the sandbox clock: the injected clock plus any Advance.
func (s *Server) nowLocked() time.Time {
	return s.opts.Now().Add(s.offset)
}

// Now returns the sandbox clock, which is Options.Now moved by Advance.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

// Seed returns the seed of the random faults, the one Options.Seed gave or,
// if it was zero, the one the sandbox picked, so that a run can be repeated.
func (s *Server) Seed() uint64 {
	return s.opts.Seed
}

// Advance moves the sandbox clock forward by d, so that `hs2cc dev` can watch
// tokens expire or quotas reset without waiting; tests can equally move
// their injected clock.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// readBody reads at most limit bytes of r's body and reports whether the body
// was longer, so that no request can make the sandbox hold unbounded memory.
func readBody(r *http.Request, limit int64) ([]byte, bool, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return b[:limit], true, nil
	}
	return b, false, nil
}

// admit applies CC's gateway checks to an API call, in the order API Gateway
// runs them: the authorizer (401 for a missing, unknown or expired token, 403
// for a missing scope), then the usage plan (429 quota_exceeded, then 429
// throttled, random or from the token bucket), and only then the backend,
// which may fail with an injected 500 or 503, fixed by route or random. A
// call that reaches the backend has been charged to the daily quota, so an
// injected 5xx costs quota as a real one would, while a throttled call does
// not. It writes the refusal itself and reports whether the handler should
// run and, if it should, whether its answer is to be dropped
// (Faults.DropRate). A dropped call has been charged to the quota too: CC
// did the work, only the answer was lost.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, pattern string) (run, drop bool) {
	s.mu.Lock()
	s.stats.Requests[pattern]++
	now := s.nowLocked()
	tok := s.bearerLocked(r, now)
	var refusal func()
	switch {
	case tok == nil:
		s.stats.Unauthorized++
		refusal = func() {
			h := w.Header()
			h.Set("WWW-Authenticate", "Bearer realm=api.cc.email")
			h.Set("x-amzn-ErrorType", "UnauthorizedException")
			writeObjectError(w, http.StatusUnauthorized, keyUnauthorized, "Unauthorized")
		}
	case !hasScope(tok.scope, scopeContactData):
		s.stats.Forbidden++
		refusal = func() {
			writeObjectError(w, http.StatusForbidden, keyForbidden,
				"Forbidden request. You lack the necessary scopes, you lack the necessary user privileges, or the application is deactivated.")
		}
	default:
		key := s.faults.Limit
		if key == "" {
			key = s.limitLocked(tok.clientID, now)
		}
		switch key {
		case keyThrottled:
			s.stats.Throttled++
			refusal = func() { writeObjectError(w, http.StatusTooManyRequests, keyThrottled, "Too Many Requests") }
		case keyQuotaExceeded:
			s.stats.QuotaExceeded++
			refusal = func() { writeObjectError(w, http.StatusTooManyRequests, keyQuotaExceeded, "Limit Exceeded") }
		case "":
			status := s.faults.Status[pattern]
			if status == 0 && s.chanceLocked(s.faults.FailRate) {
				status = s.randomServerErrorLocked()
			}
			switch status {
			case 0:
				if s.chanceLocked(s.faults.DropRate) {
					s.stats.Dropped++
					drop = true
				}
			case http.StatusServiceUnavailable:
				s.stats.Faults++
				refusal = func() {
					writeError(w, status, keyUnavailable, "Our internal service is temporarily unavailable.")
				}
			default:
				s.stats.Faults++
				refusal = func() {
					writeError(w, status, keyServerError, "There was a problem with our internal service.")
				}
			}
		}
	}
	s.mu.Unlock()
	if refusal != nil {
		s.log.Debug("ccsandbox: refused", "route", pattern)
		refusal()
		return false, false
	}
	return true, drop
}

package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
)

// setting is one environment variable. The list below is the single source
// for config parsing and for the README's table, which a test keeps in step.
type setting struct {
	name string
	def  string
	help string
}

var settings = []setting{
	{"HS2CC_MYSQL_DSN", "", "MySQL DSN (go-sql-driver format), e.g. `user:pass@tcp(host:3306)/hs2cc`. Required for serve, work and migrate; `dev` embeds a server when unset."},
	{"HS2CC_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL `redis://[:password@]host:port/db`; `dev` embeds one when unset."},
	{"HS2CC_ADDR", ":8080", "Listen address of `serve`."},
	{"HS2CC_PUBLIC_URL", "", "Base URL HubSpot calls, e.g. `https://hs2cc.fly.dev`, `http://` or `https://`. The signed URI is this plus the request's path and query as received; no URL is ever built from a request's Host header, so `serve` refuses to start without it (`dev` sets it)."},
	{"HS2CC_HUBSPOT_CLIENT_SECRET", "", "Client secret of the HubSpot app that signs the webhooks; two comma-separated secrets are both accepted during a rotation."},
	{"HS2CC_HUBSPOT_REQUIRE_V3", "true", "Refuse v1/v2 signatures when the v3 headers are absent. v1 and v2 carry no timestamp, so a captured request stays valid for ever (an exact repeat of a stored body is counted on its delivery and changes nothing): `false` is a weakening, for a sender that signs only v1/v2."},
	{"HS2CC_MAX_BODY", "8388608", "Largest webhook body taken, in bytes (8 MiB; at most 16777215, what the body columns hold, and MySQL's `max_allowed_packet` must exceed it with room for escaping). A larger one is answered 413 and recorded as a `too_large` delivery with its size, headers and first 64 KiB (shown on /ops); the quarantine keeps bodies whole up to it."},
	{"HS2CC_BODY_MEMORY", "67108864", "Memory (64 MiB) every webhook body being read or handled at once may hold together, at least `HS2CC_MAX_BODY`. Each body reserves what arrives of it, never what it declares; one that finds none free within 2 s is answered `503` `busy` with `Retry-After: 30` (HubSpot retries it). `hs2cc_webhook_body_memory_bytes` shows the use."},
	{"HS2CC_QUARANTINE_MAX_ROWS", "10000", "Most webhook requests kept in quarantine after a signature failure; at the cap a new one is answered 401 without being kept (see Quarantine)."},
	{"HS2CC_QUARANTINE_MAX_BYTES", "104857600", "Most body bytes (100 MiB) kept in quarantine, each body whole (up to `HS2CC_MAX_BODY`); at the cap a new request is answered 401 without being kept."},
	{"HS2CC_FIELD_EMAIL", "email", "HubSpot property holding the email."},
	{"HS2CC_FIELD_FIRSTNAME", "firstname", "HubSpot property holding the first name."},
	{"HS2CC_FIELD_LASTNAME", "lastname", "HubSpot property holding the last name."},
	{"HS2CC_FIELD_COUNTRY", "country", "HubSpot property holding the country."},
	{"HS2CC_FIELD_ENROLLED_AT", "createdate", "HubSpot property holding the enrollment date."},
	{"HS2CC_CC_LISTS", "New Agents", "Comma-separated CC list names every enrollment is added to, when `HS2CC_ROUTES` is unset."},
	{"HS2CC_ROUTES", "", "Path of a YAML rules file that routes enrollments to CC lists and maps HubSpot properties to CC fields (see README); it replaces `HS2CC_CC_LISTS`."},
	{"HS2CC_CC_DAILY_BUDGET", "8000", "CC API calls the bridge allows itself per UTC day, counted in Redis across every process (CC's own cap is 10,000)."},
	{"HS2CC_CC_RATE", "4", "CC API calls per second across every process (CC allows 4)."},
	{"HS2CC_CC_API_URL", ccclient.DefaultBaseURL, "Constant Contact v3 API base URL."},
	{"HS2CC_CC_AUTH_URL", ccclient.DefaultAuthURL, "Constant Contact OAuth base URL (authorize and token endpoints below it)."},
	{"HS2CC_CC_CLIENT_ID", "", "Constant Contact API key (OAuth client id)."},
	{"HS2CC_CC_CLIENT_SECRET", "", "Constant Contact OAuth client secret."},
	{"HS2CC_CC_REDIRECT_URL", "", "OAuth redirect URI registered for the CC app; unset, `HS2CC_PUBLIC_URL` + `/oauth/callback`. `hs2cc connect` listens on it when its host is loopback."},
	{"HS2CC_CC_REFRESH_MARGIN", "2h", "Refresh the CC access token when it expires within this, or within a third of the life CC granted it when that is shorter."},
	{"HS2CC_TOKEN_REFRESH_INTERVAL", "10m", "How often the worker checks whether the CC token is due for refresh."},
	{"HS2CC_TOKEN_KEY", "", "AES-256 key sealing the CC tokens in MySQL: 32 bytes as base64 or hex (`hs2cc keygen` makes one). During a rotation give `new,old`. Required by serve, work and connect; `dev` makes a throwaway one."},
	{"HS2CC_OPS_USER", "", "Basic-auth user of the simple admin login to /ops, /ops/queues (Asynqmon) and /oauth/connect; /ops is off unless this and the password, or `HS2CC_OPS_USERS`, are set."},
	{"HS2CC_OPS_PASSWORD", "", "Basic-auth password of the simple admin login."},
	{"HS2CC_OPS_USERS", "", "Further ops logins, comma-separated `name:role:bcrypt-hash`, role `admin` (everything) or `viewer` (/ops and a read-only Asynqmon); hashes of cost 10 or more (see Ops)."},
	{"HS2CC_METRICS_TOKEN", "", "When set, `/metrics` (of serve, and of work's listener) answers only `Authorization: Bearer <token>`."},
	{"HS2CC_METRICS_ADDR", "", "Listen address of `work`'s own `/metrics` (CC calls, enrollment ages), e.g. `:9091`; off when unset."},
	{"HS2CC_WORKER_CONCURRENCY", "10", "Tasks `work` runs at once."},
	{"HS2CC_GROUP_GRACE_PERIOD", "10s", "How long a batch waits for one more enrollment before it is imported (minimum 1s)."},
	{"HS2CC_GROUP_MAX_DELAY", "60s", "Longest wait of the first enrollment in a batch."},
	{"HS2CC_GROUP_MAX_SIZE", "40000", "Most enrollment tasks gathered into one batch. Each import also takes every other pending row of its lists, within CC's 40,000 contacts and 4 MB."},
	{"HS2CC_SWEEP_INTERVAL", "1m", "How often the sweep re-enqueues enrollments and imports whose tasks Redis lost."},
	{"HS2CC_SWEEP_AGE", "10m", "How long a row must have waited before the sweep counts it as lost."},
	{"HS2CC_RETENTION", "720h", "How long raw delivery bodies (personal data) are kept; a periodic task empties older ones and keeps the rows. `0` keeps them."},
	{"HS2CC_RECONCILE_INTERVAL", "0", "How often `work` compares the routed CC lists with the bridge's imports of the last 30 days, as `hs2cc reconcile` does but report-only (shown on /ops); it skips a run that would spend more than half of today's remaining CC budget. `0` never does."},
	{"HS2CC_HUBSPOT_TOKEN", "", "HubSpot private app token (scopes `crm.objects.contacts.write`, `crm.schemas.contacts.write`). When set, what CC did with each enrollment is written back onto its HubSpot contact (properties `hs2cc_cc_status`, `hs2cc_cc_lists`, `hs2cc_cc_synced_at`, `hs2cc_cc_reason`, made on first use) and CC's unsubscribes are read back; unset, the write-back is off and HubSpot is never called (see HubSpot write-back)."},
	{"HS2CC_HUBSPOT_API_URL", crm.DefaultBaseURL, "HubSpot API base URL (`dev` points it at its HubSpot sandbox)."},
	{"HS2CC_HUBSPOT_RATE", "100", "HubSpot API calls per 10 seconds across every process (a private app's limit is 100, 190 on Professional and Enterprise)."},
	{"HS2CC_HUBSPOT_DAILY", "250000", "HubSpot API calls the bridge allows itself per UTC day, counted in Redis across every process (HubSpot's daily limit for a private app is 250,000 or more by subscription)."},
	{"HS2CC_UNSUBSCRIBE_SYNC_INTERVAL", "15m", "How often `work` reads the contacts CC unsubscribed since its last run and writes `hs2cc_cc_status=unsubscribed` to HubSpot, when the write-back is on; each run spends at most a quarter of what today's CC budget has left. `0` never does."},
	{"HS2CC_LEADER_LEASE", "30s", "Lease of the one `work` process that runs the periodic tasks; after it dies another takes over within about twice this."},
	{"HS2CC_LOG_FORMAT", "json", "`json` or `text` (`dev` defaults to text)."},
	{"HS2CC_LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`."},
}

// config is the parsed environment.
type config struct {
	MySQLDSN        string
	RedisURL        string
	Addr            string
	PublicURL       string
	HubSpotSecrets  []string
	RequireV3       bool
	MaxBody         int64
	BodyMemory      int64
	QuarantineCap   store.QuarantineCap
	Fields          hubspot.FieldNames
	Lists           []string
	CCAPIURL        string
	CCAuthURL       string
	CCClientID      string
	CCClientSecret  string
	CCRedirectURL   string
	RoutesFile      string
	Rules           *routing.Rules
	CCDailyBudget   int
	CCRate          int
	CCRefreshMargin time.Duration
	TokenKeys       *store.TokenKeys // nil when HS2CC_TOKEN_KEY is unset
	OpsUser         string
	OpsPassword     string
	OpsAccounts     []handlers.OpsAccount
	MetricsToken    string
	MetricsAddr     string
	// HubSpotToken turns the HubSpot write-back on; HubSpotAPIURL,
	// HubSpotRate (calls per 10 s) and HubSpotDaily shape its calls.
	HubSpotToken  string
	HubSpotAPIURL string
	HubSpotRate   int
	HubSpotDaily  int
	Worker        jobs.Config
	LogFormat     string
	LogLevel      string
	// BehindFly is set when Fly runs the process (FLY_APP_NAME, which Fly
	// sets on every machine): only then is Fly-Client-IP the caller's
	// address rather than a header anyone can send.
	BehindFly bool
}

// loadConfig reads every HS2CC_ variable, applying defaults, and reports all
// malformed values at once so that a deploy fails with the whole list.
func loadConfig(getenv func(string) string) (config, error) {
	env := &envReader{getenv: getenv}
	get, num, dur, boolean := env.get, env.num, env.dur, env.boolean
	cfg := config{
		MySQLDSN:       get("HS2CC_MYSQL_DSN"),
		RedisURL:       get("HS2CC_REDIS_URL"),
		Addr:           get("HS2CC_ADDR"),
		PublicURL:      strings.TrimSuffix(get("HS2CC_PUBLIC_URL"), "/"),
		HubSpotSecrets: splitList(get("HS2CC_HUBSPOT_CLIENT_SECRET")),
		RequireV3:      boolean("HS2CC_HUBSPOT_REQUIRE_V3"),
		MaxBody:        int64(num("HS2CC_MAX_BODY")),
		BodyMemory:     int64(num("HS2CC_BODY_MEMORY")),
		QuarantineCap: store.QuarantineCap{
			MaxRows: int64(num("HS2CC_QUARANTINE_MAX_ROWS")), MaxBytes: int64(num("HS2CC_QUARANTINE_MAX_BYTES")),
		},
		Fields: hubspot.FieldNames{
			Email: get("HS2CC_FIELD_EMAIL"), FirstName: get("HS2CC_FIELD_FIRSTNAME"),
			LastName: get("HS2CC_FIELD_LASTNAME"), Country: get("HS2CC_FIELD_COUNTRY"),
			EnrolledAt: get("HS2CC_FIELD_ENROLLED_AT"),
		},
		Lists:           splitList(get("HS2CC_CC_LISTS")),
		CCAPIURL:        get("HS2CC_CC_API_URL"),
		CCAuthURL:       get("HS2CC_CC_AUTH_URL"),
		CCClientID:      get("HS2CC_CC_CLIENT_ID"),
		CCClientSecret:  get("HS2CC_CC_CLIENT_SECRET"),
		CCRedirectURL:   get("HS2CC_CC_REDIRECT_URL"),
		RoutesFile:      get("HS2CC_ROUTES"),
		CCDailyBudget:   num("HS2CC_CC_DAILY_BUDGET"),
		CCRate:          num("HS2CC_CC_RATE"),
		CCRefreshMargin: dur("HS2CC_CC_REFRESH_MARGIN"),
		OpsUser:         get("HS2CC_OPS_USER"),
		OpsPassword:     get("HS2CC_OPS_PASSWORD"),
		MetricsToken:    get("HS2CC_METRICS_TOKEN"),
		MetricsAddr:     get("HS2CC_METRICS_ADDR"),
		HubSpotToken:    strings.TrimSpace(get("HS2CC_HUBSPOT_TOKEN")),
		HubSpotAPIURL:   get("HS2CC_HUBSPOT_API_URL"),
		HubSpotRate:     num("HS2CC_HUBSPOT_RATE"),
		HubSpotDaily:    num("HS2CC_HUBSPOT_DAILY"),
		LogFormat:       get("HS2CC_LOG_FORMAT"),
		LogLevel:        get("HS2CC_LOG_LEVEL"),
		Worker:          env.worker(),
	}
	cfg.BehindFly = strings.TrimSpace(getenv("FLY_APP_NAME")) != ""
	if cfg.CCRedirectURL == "" && cfg.PublicURL != "" {
		cfg.CCRedirectURL = cfg.PublicURL + "/oauth/callback"
	}
	cfg.check(env)
	if len(env.errs) > 0 {
		return cfg, fmt.Errorf("config: %s", strings.Join(env.errs, "; "))
	}
	return cfg, nil
}

// envReader reads HS2CC_ variables, applying defaults, and collects every
// malformed value rather than stopping at the first.
type envReader struct {
	getenv func(string) string
	errs   []string
}

func (r *envReader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *envReader) get(name string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	for _, s := range settings {
		if s.name == name {
			return s.def
		}
	}
	panic("unknown setting " + name)
}

func (r *envReader) dur(name string) time.Duration {
	d, err := time.ParseDuration(r.get(name))
	if err != nil {
		r.fail("%s: %v", name, err)
	}
	return d
}

func (r *envReader) num(name string) int {
	n, err := strconv.Atoi(r.get(name))
	if err != nil || n <= 0 {
		r.fail("%s: want a positive whole number, got %q", name, r.get(name))
	}
	return n
}

func (r *envReader) boolean(name string) bool {
	b, err := strconv.ParseBool(r.get(name))
	if err != nil {
		r.fail("%s: want true or false, got %q", name, r.get(name))
	}
	return b
}

// worker reads the worker's settings over its production defaults.
func (r *envReader) worker() jobs.Config {
	w := jobs.DefaultConfig()
	w.Concurrency = r.num("HS2CC_WORKER_CONCURRENCY")
	w.GroupGracePeriod = r.dur("HS2CC_GROUP_GRACE_PERIOD")
	w.GroupMaxDelay = r.dur("HS2CC_GROUP_MAX_DELAY")
	w.GroupMaxSize = r.num("HS2CC_GROUP_MAX_SIZE")
	w.SweepInterval = r.dur("HS2CC_SWEEP_INTERVAL")
	w.SweepAge = r.dur("HS2CC_SWEEP_AGE")
	w.TokenRefreshInterval = r.dur("HS2CC_TOKEN_REFRESH_INTERVAL")
	w.LeaderLease = r.dur("HS2CC_LEADER_LEASE")
	w.Retention = r.dur("HS2CC_RETENTION")
	w.ReconcileInterval = r.dur("HS2CC_RECONCILE_INTERVAL")
	w.UnsubscribeInterval = r.dur("HS2CC_UNSUBSCRIBE_SYNC_INTERVAL")
	return w
}

// check reads what needs more than parsing (the token key, the rules file,
// the ops logins) and checks what the settings mean together, reporting
// each problem to r.
func (c *config) check(r *envReader) {
	if k := r.get("HS2CC_TOKEN_KEY"); k != "" {
		keys, err := store.ParseTokenKeys(k)
		if err != nil {
			r.fail("HS2CC_TOKEN_KEY: %v", err)
		}
		c.TokenKeys = keys
	}
	if c.MaxBody > store.BodyMax {
		r.fail("HS2CC_MAX_BODY: at most %d bytes, what a stored body can hold, got %d", store.BodyMax, c.MaxBody)
	}
	if c.BodyMemory < c.MaxBody {
		r.fail("HS2CC_BODY_MEMORY: at least HS2CC_MAX_BODY (%d bytes), so that one whole body fits, got %d", c.MaxBody, c.BodyMemory)
	}
	if c.PublicURL != "" {
		if err := checkPublicURL(c.PublicURL); err != nil {
			r.fail("HS2CC_PUBLIC_URL: %v", err)
		}
	}
	if len(c.Lists) == 0 && c.RoutesFile == "" {
		r.fail("HS2CC_CC_LISTS: name at least one CC list")
	}
	if rules, err := loadRules(c.RoutesFile, c.Lists); err != nil {
		r.fail("%s", err)
	} else {
		c.Rules = rules
	}
	if err := checkOpsPassword(c.OpsPassword); err != nil {
		r.fail("HS2CC_OPS_PASSWORD: %v", err)
	}
	if accounts, err := parseOpsUsers(r.get("HS2CC_OPS_USERS"), c.OpsUser); err != nil {
		r.fail("%s", err)
	} else {
		c.OpsAccounts = accounts
	}
	if c.HubSpotRate < 1 {
		r.fail("HS2CC_HUBSPOT_RATE: at least 1 call per 10 seconds, got %d", c.HubSpotRate)
	}
	if c.HubSpotDaily < 1 {
		r.fail("HS2CC_HUBSPOT_DAILY: at least 1 call a day, got %d", c.HubSpotDaily)
	}
	if err := checkPublicURL(c.HubSpotAPIURL); err != nil {
		r.fail("HS2CC_HUBSPOT_API_URL: %v", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		r.fail("HS2CC_LOG_FORMAT: want json or text, got %q", c.LogFormat)
	}
}

// minOpsCost is the least bcrypt cost accepted for an ops login: below
// bcrypt's default, a leaked configuration is too cheap to guess against.
const minOpsCost = bcrypt.DefaultCost

// minOpsPasswordLen is the fewest characters of a plain-text simple admin
// password. Failed logins are limited per address, but not across many
// addresses, so the password itself must be too long to guess.
const minOpsPasswordLen = 16

// checkOpsPassword refuses a simple admin password that is short, unless it
// is a bcrypt hash of at least minOpsCost. Something shaped like a hash that
// bcrypt cannot read is refused too, rather than taken as plain text. The
// error never holds the password.
func checkOpsPassword(p string) error {
	if p == "" {
		return nil
	}
	if strings.HasPrefix(p, "$2") {
		cost, ok := handlers.PasswordHashCost(p)
		switch {
		case !ok:
			return fmt.Errorf("looks like a bcrypt hash but is not one ($2a$, $2b$ or $2y$, 60 characters)")
		case cost < minOpsCost:
			return fmt.Errorf("bcrypt cost %d, want at least %d", cost, minOpsCost)
		}
		return nil
	}
	if n := utf8.RuneCountInString(p); n < minOpsPasswordLen {
		return fmt.Errorf("%d characters, want at least %d, or a bcrypt hash of cost %d or more", n, minOpsPasswordLen, minOpsCost)
	}
	return nil
}

// parseOpsUsers reads HS2CC_OPS_USERS, `name:role:hash` entries separated
// by commas. A bcrypt hash holds neither ':' nor ',', so the format needs no
// quoting. Every faulty entry is reported, by position and name, never
// with its hash.
func parseOpsUsers(s, simpleUser string) ([]handlers.OpsAccount, error) {
	var out []handlers.OpsAccount
	var errs []string
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Sprintf("entry %d: "+format, append([]any{i + 1}, args...)...))
		}
		parts := strings.Split(entry, ":")
		if len(parts) != 3 {
			bad("want name:role:bcrypt-hash, got %d fields", len(parts))
			continue
		}
		name, role, hash := strings.TrimSpace(parts[0]), handlers.Role(strings.TrimSpace(parts[1])), strings.TrimSpace(parts[2])
		switch {
		case name == "":
			bad("the name is empty")
			continue
		case role != handlers.RoleAdmin && role != handlers.RoleViewer:
			bad("user %q: role %q, want admin or viewer", name, role)
			continue
		case seen[name]:
			bad("user %q is named twice", name)
			continue
		case name == simpleUser:
			bad("user %q is also HS2CC_OPS_USER", name)
			continue
		}
		seen[name] = true
		cost, ok := handlers.PasswordHashCost(hash)
		switch {
		case !ok:
			bad("user %q: the password is not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)", name)
			continue
		case cost < minOpsCost:
			bad("user %q: bcrypt cost %d, want at least %d", name, cost, minOpsCost)
			continue
		}
		out = append(out, handlers.OpsAccount{Name: name, Role: role, Hash: []byte(hash)})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("HS2CC_OPS_USERS: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// requireTokenKey is the check of every command that reads or writes the CC
// tokens: without the key they could do neither.
func (c config) requireTokenKey() error {
	if c.TokenKeys == nil {
		return fmt.Errorf("config: HS2CC_TOKEN_KEY is required (make one with `hs2cc keygen` and keep it secret)")
	}
	return nil
}

// checkPublicURL accepts an absolute http or https URL with a host and no
// query or fragment, the base the signed URI and the OAuth redirect are
// built on.
func checkPublicURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want an http:// or https:// URL, got %q", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q has a query or fragment", s)
	}
	return nil
}

// requirePublicURL is serve's check: without a configured base URL the
// webhook's signed URI could only come from the Host header, which the
// caller chooses.
func (c config) requirePublicURL() error {
	if c.PublicURL == "" {
		return fmt.Errorf("config: HS2CC_PUBLIC_URL is required: the URL HubSpot calls, e.g. https://hs2cc.fly.dev")
	}
	return nil
}

// requireMySQL is the check serve, work and migrate share.
func (c config) requireMySQL() error {
	if c.MySQLDSN == "" {
		return fmt.Errorf("config: HS2CC_MYSQL_DSN is required")
	}
	return nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/jobs"
)

// The deploy files live at the repository root, two levels above this package.
const repoRoot = "../.."

// leaseRelease is store.Lease.Release's own timeout: a stopping worker spends
// up to this giving the scheduler lease back before asynq shuts down.
const leaseRelease = 2 * time.Second

// flyMaxKillTimeout is the longest kill_timeout Fly allows on shared-CPU
// machines.
const flyMaxKillTimeout = 300 * time.Second

// tomlTable is one table of fly.toml: its header ("" for the top level) and
// its keys with their raw (unparsed) values.
type tomlTable struct {
	name string
	keys map[string]string
}

// flyConfig is fly.toml as the small subset of TOML it is written in: tables,
// arrays of tables, and one-line `key = value` pairs.
type flyConfig []tomlTable

// parseFlyTOML reads fly.toml. It knows only what fly.toml uses, and fails on
// anything else, so that a construct it cannot read is never silently skipped.
func parseFlyTOML(t *testing.T, path string) flyConfig {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := flyConfig{{name: "", keys: map[string]string{}}}
	header := regexp.MustCompile(`^\[\[?([A-Za-z0-9_.-]+)\]\]?$`)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(stripComment(sc.Text()))
		if line == "" {
			continue
		}
		if m := header.FindStringSubmatch(line); m != nil {
			cfg = append(cfg, tomlTable{name: m[1], keys: map[string]string{}})
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: cannot read %q", path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		cur := cfg[len(cfg)-1]
		if _, dup := cur.keys[k]; dup {
			t.Fatalf("%s:%d: %s set twice in [%s]", path, n, k, cur.name)
		}
		cur.keys[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// stripComment drops a # comment that is not inside a double-quoted string.
func stripComment(line string) string {
	in := false
	for i, r := range line {
		switch {
		case r == '"' && (i == 0 || line[i-1] != '\\'):
			in = !in
		case r == '#' && !in:
			return line[:i]
		}
	}
	return line
}

// tables returns every table with the given header, in file order.
func (c flyConfig) tables(name string) []tomlTable {
	var out []tomlTable
	for _, tb := range c {
		if tb.name == name {
			out = append(out, tb)
		}
	}
	return out
}

// table returns the one table with the given header.
func (c flyConfig) table(t *testing.T, name string) tomlTable {
	t.Helper()
	tbs := c.tables(name)
	if len(tbs) != 1 {
		t.Fatalf("fly.toml: want one [%s], have %d", name, len(tbs))
	}
	return tbs[0]
}

// str returns a key's value as a string, failing unless it is a quoted one.
func (tb tomlTable) str(t *testing.T, key string) string {
	t.Helper()
	raw, ok := tb.keys[key]
	if !ok {
		t.Fatalf("fly.toml [%s]: %s is missing", tb.name, key)
	}
	s, err := strconv.Unquote(raw)
	if err != nil {
		t.Fatalf("fly.toml [%s]: %s = %s is not a string", tb.name, key, raw)
	}
	return s
}

// strs returns a key's value as a list of strings, e.g. ["web"].
func (tb tomlTable) strs(t *testing.T, key string) []string {
	t.Helper()
	raw := tb.keys[key]
	if !strings.HasPrefix(raw, "[") || !strings.HasSuffix(raw, "]") {
		t.Fatalf("fly.toml [%s]: %s = %q is not a list", tb.name, key, raw)
	}
	var out []string
	for _, item := range strings.Split(strings.Trim(raw, "[]"), ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		s, err := strconv.Unquote(item)
		if err != nil {
			t.Fatalf("fly.toml [%s]: %s has a non-string item %s", tb.name, key, item)
		}
		out = append(out, s)
	}
	return out
}

// duration reads a Fly duration: a string with a unit ("40s") or a bare
// number of seconds (40), as flyctl accepts both for kill_timeout.
func (tb tomlTable) duration(t *testing.T, key string) time.Duration {
	t.Helper()
	raw, ok := tb.keys[key]
	if !ok {
		t.Fatalf("fly.toml [%s]: %s is missing", tb.name, key)
	}
	if n, err := strconv.Atoi(raw); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(tb.str(t, key))
	if err != nil {
		t.Fatalf("fly.toml [%s]: %s: %v", tb.name, key, err)
	}
	return d
}

// TestFlyTOML checks fly.toml against the code it deploys: the commands it
// runs exist, the health check and port match serve, and machines get long
// enough to shut down cleanly.
func TestFlyTOML(t *testing.T) {
	fly := parseFlyTOML(t, filepath.Join(repoRoot, "fly.toml"))
	top := fly.table(t, "")

	if top.str(t, "app") == "" || top.str(t, "primary_region") == "" {
		t.Error("fly.toml: app and primary_region must be set")
	}

	// main.go stops on SIGTERM and SIGINT; Fly's default is SIGINT, but
	// SIGTERM is the one every supervisor (and `docker stop`) agrees on.
	if got := top.str(t, "kill_signal"); got != "SIGTERM" {
		t.Errorf("kill_signal = %q, want SIGTERM", got)
	}
	// serve drains HTTP for httpDrain; work first gives up the scheduler
	// lease (in the worst case a lease round trip already in flight, a third
	// of the lease, then the release) and then lets asynq finish running
	// tasks for ShutdownTimeout. kill_timeout must cover both with a margin.
	const margin = 5 * time.Second
	wc := jobs.DefaultConfig()
	kill := top.duration(t, "kill_timeout")
	for what, need := range map[string]time.Duration{
		"HTTP drain + asynq shutdown":                 httpDrain + wc.ShutdownTimeout + margin,
		"lease round trip + release + asynq shutdown": wc.LeaderLease/3 + leaseRelease + wc.ShutdownTimeout + margin,
	} {
		if kill < need {
			t.Errorf("kill_timeout = %s, want at least %s (%s + %s margin)", kill, need, what, margin)
		}
	}
	if kill > flyMaxKillTimeout {
		t.Errorf("kill_timeout = %s, Fly allows at most %s", kill, flyMaxKillTimeout)
	}

	if df := fly.table(t, "build").str(t, "dockerfile"); df != "Dockerfile" {
		t.Errorf("[build] dockerfile = %q, want Dockerfile", df)
	} else if _, err := os.Stat(filepath.Join(repoRoot, df)); err != nil {
		t.Errorf("[build] dockerfile: %v", err)
	}

	// Every command fly.toml runs must be one run() knows: the release
	// command first, then each process group.
	commands := map[string]string{"release_command": fly.table(t, "deploy").str(t, "release_command")}
	if got := commands["release_command"]; got != "hs2cc migrate" {
		t.Errorf("[deploy] release_command = %q, want \"hs2cc migrate\"", got)
	}
	procs := fly.table(t, "processes")
	want := map[string]string{"web": "hs2cc serve", "worker": "hs2cc work"}
	if len(procs.keys) != len(want) {
		t.Errorf("[processes] = %v, want exactly %v", procs.keys, want)
	}
	for name, cmd := range want {
		if got := procs.str(t, name); got != cmd {
			t.Errorf("[processes] %s = %q, want %q", name, got, cmd)
		}
		commands["process "+name] = procs.str(t, name)
	}
	for what, cmd := range commands {
		checkKnownCommand(t, what, cmd)
	}

	env := fly.table(t, "env")
	checkFlyEnv(t, env)

	svc := fly.table(t, "http_service")
	if got := svc.strs(t, "processes"); !slices.Equal(got, []string{"web"}) {
		t.Errorf("[http_service] processes = %v, want [web]: only serve answers HTTP", got)
	}
	cfg, err := loadConfig(func(name string) string {
		if v, ok := env.keys[name]; ok {
			s, _ := strconv.Unquote(v)
			return s
		}
		return ""
	})
	if err != nil {
		t.Fatalf("loadConfig with fly.toml's [env]: %v", err)
	}
	_, port, _ := strings.Cut(cfg.Addr, ":")
	if got := svc.keys["internal_port"]; got != port {
		t.Errorf("[http_service] internal_port = %s, but serve listens on %q", got, cfg.Addr)
	}
	if got := svc.keys["force_https"]; got != "true" {
		t.Errorf("[http_service] force_https = %s, want true", got)
	}
	// Webhooks must be answered: the proxy must not stop web machines.
	if got := svc.keys["auto_stop_machines"]; got != `"off"` && got != "false" {
		t.Errorf("[http_service] auto_stop_machines = %s, want \"off\"", got)
	}
	if n, err := strconv.Atoi(svc.keys["min_machines_running"]); err != nil || n < 1 {
		t.Errorf("[http_service] min_machines_running = %q, want at least 1", svc.keys["min_machines_running"])
	}

	checks := fly.tables("http_service.checks")
	if len(checks) == 0 {
		t.Fatal("fly.toml: no [[http_service.checks]]")
	}
	for _, c := range checks {
		// /healthz, not /readyz: a failing check takes the machine out of
		// routing, and webhooks must still be accepted while, say, CC needs
		// reconnecting.
		if got := c.str(t, "path"); got != "/healthz" {
			t.Errorf("[[http_service.checks]] path = %q, want /healthz", got)
		}
		if got := c.str(t, "method"); !strings.EqualFold(got, "GET") {
			t.Errorf("[[http_service.checks]] method = %q, want GET", got)
		}
		for _, k := range []string{"interval", "timeout", "grace_period"} {
			if d := c.duration(t, k); d <= 0 {
				t.Errorf("[[http_service.checks]] %s = %s, want a positive duration", k, d)
			}
		}
		if c.duration(t, "timeout") >= c.duration(t, "interval") {
			t.Errorf("[[http_service.checks]] timeout must be shorter than interval")
		}
	}
}

// checkKnownCommand asserts that cmd is `hs2cc <subcommand>` and that run()
// dispatches the subcommand: with no configuration serve, work and migrate
// fail on the missing DSN, never with the usage error of an unknown command.
func checkKnownCommand(t *testing.T, what, cmd string) {
	t.Helper()
	args := strings.Fields(cmd)
	if len(args) < 2 || args[0] != "hs2cc" {
		t.Errorf("%s = %q, want `hs2cc <command>`", what, cmd)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing may start for real
	var stdout, stderr bytes.Buffer
	err := run(ctx, args[1:], func(string) string { return "" }, &stdout, &stderr)
	if errors.Is(err, errUsage) || strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("%s = %q: hs2cc does not know %q", what, cmd, args[1])
		return
	}
	if err == nil || !strings.Contains(err.Error(), "HS2CC_MYSQL_DSN") {
		t.Errorf("%s = %q without configuration: err = %v, want the missing HS2CC_MYSQL_DSN", what, cmd, err)
	}
}

// checkFlyEnv asserts that [env] sets only settings hs2cc reads, and none
// that must stay secret.
func checkFlyEnv(t *testing.T, env tomlTable) {
	t.Helper()
	secret := regexp.MustCompile(`DSN|_URL$|SECRET|PASSWORD|TOKEN_KEY|_TOKEN$|_USER$`)
	for k, v := range env.keys {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.name == k }) {
			t.Errorf("[env] %s is not a setting hs2cc reads", k)
		}
		if secret.MatchString(k) {
			t.Errorf("[env] %s belongs in `fly secrets set`, not fly.toml", k)
		}
		if _, err := strconv.Unquote(v); err != nil {
			t.Errorf("[env] %s = %s: Fly env values must be strings", k, v)
		}
	}
	for _, k := range []string{"HS2CC_ADDR", "HS2CC_LOG_FORMAT"} {
		if _, ok := env.keys[k]; !ok {
			t.Errorf("[env] %s is not set", k)
		}
	}
	if got := env.str(t, "HS2CC_LOG_FORMAT"); got != "json" {
		t.Errorf("[env] HS2CC_LOG_FORMAT = %q, want json", got)
	}
}

// dockerStage is one FROM ... stage of the Dockerfile: its base image and
// its instructions, continuation lines joined.
type dockerStage struct {
	from  string
	instr [][2]string // {"COPY", "--from=build /out/hs2cc /usr/local/bin/hs2cc"}
}

func parseDockerfile(t *testing.T, path string) (args map[string]string, stages []dockerStage) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	args = map[string]string{}
	var logical []string
	var cont strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cont.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cont.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cont.WriteString(trimmed)
		logical = append(logical, cont.String())
		cont.Reset()
	}
	for _, l := range logical {
		kw, rest, _ := strings.Cut(l, " ")
		kw, rest = strings.ToUpper(kw), strings.TrimSpace(rest)
		switch {
		case kw == "FROM":
			image, _, _ := strings.Cut(rest, " ")
			stages = append(stages, dockerStage{from: image})
		case len(stages) == 0 && kw == "ARG":
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		case len(stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", kw)
		default:
			s := &stages[len(stages)-1]
			s.instr = append(s.instr, [2]string{kw, rest})
		}
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return args, stages
}

// TestDockerfile checks what fly.toml relies on: a non-root final image with
// the binary on PATH as `hs2cc` and no ENTRYPOINT (release_command and the
// process commands replace CMD), built with the go.mod Go version.
func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	final := stages[len(stages)-1]

	var user string
	var copiesBinary bool
	var cmd string
	for _, in := range final.instr {
		switch in[0] {
		case "USER":
			user = in[1]
		case "ENTRYPOINT":
			t.Errorf("final stage sets ENTRYPOINT %s: Fly's release_command and processes replace only CMD", in[1])
		case "CMD":
			cmd = in[1]
		case "COPY":
			f := strings.Fields(in[1])
			dst := f[len(f)-1]
			if slices.Contains([]string{"/usr/local/bin/hs2cc", "/usr/bin/hs2cc", "/bin/hs2cc"}, dst) {
				copiesBinary = true
			}
		}
	}
	nonrootImage := strings.HasSuffix(final.from, ":nonroot") || strings.Contains(final.from, ":nonroot@")
	uid, _, _ := strings.Cut(user, ":")
	switch {
	case user == "" && !nonrootImage:
		t.Errorf("final stage (FROM %s) runs as root: set USER or use a :nonroot image", final.from)
	case user != "" && (uid == "root" || uid == "0"):
		t.Errorf("final stage runs as USER %s, want a non-root user", user)
	}
	if !copiesBinary {
		t.Error("final stage does not put the binary on PATH as hs2cc (e.g. COPY ... /usr/local/bin/hs2cc)")
	}
	if !strings.HasPrefix(cmd, `["hs2cc"`) {
		t.Errorf("final stage CMD = %s, want the exec form [\"hs2cc\", ...]", cmd)
	}

	// The build stage's Go is go.mod's minor version.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	build := stages[0].from
	build = strings.ReplaceAll(build, "${GO_VERSION}", args["GO_VERSION"])
	if want := fmt.Sprintf("golang:%s", m[1]); !strings.HasPrefix(build, want) {
		t.Errorf("build stage FROM %s, want %s (go.mod)", build, want)
	}
	var static, nodev bool
	for _, in := range stages[0].instr {
		if in[0] == "ENV" && strings.Contains(in[1], "CGO_ENABLED=0") {
			static = true
		}
		// The embedded dev stack would cost every production process
		// about 60 MB and 250 ms at start (dev_nodev.go).
		if in[0] == "RUN" && strings.Contains(in[1], "go build") && strings.Contains(in[1], "-tags nodev") {
			nodev = true
		}
	}
	if !static {
		t.Error("build stage does not set CGO_ENABLED=0: the distroless static image has no libc")
	}
	if !nodev {
		t.Error("build stage does not build with -tags nodev: the image would carry the embedded dev stack")
	}
}

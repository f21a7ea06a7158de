//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpsPagesInBrowser looks at the ops pages the way a person does: in a
// real browser, behind the basic-auth login `hs2cc dev` prints. It runs the
// whole bridge, imports some contacts, then has headless Chromium render
// /ops (server-rendered figures) and /ops/queues (Asynqmon, a React app
// that only shows the queue after its JavaScript has fetched the API), and
// keeps a screenshot of each in HS2CC_ARTIFACTS for a person to look at.
func TestOpsPagesInBrowser(t *testing.T) {
	browser := chromiumPath(t)
	artifacts := artifactsDir(t)

	addr, ccAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs syncBuffer
	done := make(chan error, 1)
	// An empty environment makes dev embed MySQL and Redis, so the pages
	// show exactly the traffic this test sends and nothing left by others.
	go func() {
		done <- run(ctx, []string{"dev", "--addr", addr, "--cc-addr", ccAddr, "--hs-addr", "127.0.0.1:0", "--cc-activity-delay", "200ms"},
			func(string) string { return "" }, &out, &logs)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not shut down within 30s")
		}
		if t.Failed() {
			t.Logf("dev log:\n%s", logs.String())
		}
	}()
	waitFor(t, "dev to print its banner", 60*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v\n%s", err, logs.String())
		default:
		}
		return strings.Contains(out.String(), "Press Ctrl-C")
	})
	banner := out.String()
	secret := regexp.MustCompile(`--secret '([^']+)'`).FindStringSubmatch(banner)
	login := regexp.MustCompile(`user "([^"]+)", password "([^"]+)"`).FindStringSubmatch(banner)
	if secret == nil || login == nil {
		t.Fatalf("banner lacks the secret or the login:\n%s", banner)
	}
	user, pass := login[1], login[2]

	const n = 37
	res, err := simulate(ctx, simOptions{URL: "http://" + addr + "/webhooks/hubspot", Secret: secret[1],
		Count: n, Concurrency: 4, Repeats: 5, FirstID: 4_200_000, PortalID: 62515})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if res.Accepted != n || res.Rejected != 0 || res.Failed != 0 {
		t.Fatalf("answers: %d accepted, %d duplicates, %d rejected, %d failed; want %d accepted and none refused",
			res.Accepted, res.Duplicates, res.Rejected, res.Failed, n)
	}

	// The browser should find the figures final, so the test waits on the
	// same figures as JSON until every enrollment and the import that
	// carried them are done.
	var status struct {
		Enrollments   map[string]int `json:"enrollments"`
		RecentImports []struct {
			State        string `json:"state"`
			ContactCount int    `json:"contact_count"`
		} `json:"recent_imports"`
	}
	waitFor(t, "every simulated contact imported", 60*time.Second, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ops/status.json", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&status) != nil {
			return false
		}
		imported := 0
		for _, imp := range status.RecentImports {
			if imp.State == "completed" {
				imported += imp.ContactCount
			}
		}
		return status.Enrollments["imported"] == n && imported == n
	})

	// Chromium takes the login from the URL for the page and then reuses
	// it for the page's own requests to the same origin, as Asynqmon's
	// API calls need.
	base := (&url.URL{Scheme: "http", User: url.UserPassword(user, pass), Host: addr}).String()

	t.Run("ops", func(t *testing.T) {
		dom := renderPage(t, browser, base+"/ops", filepath.Join(artifacts, "ops.png"), 0)
		writeArtifact(t, filepath.Join(artifacts, "ops.html"), dom)
		if !strings.Contains(dom, "<h1>hs2cc ops</h1>") {
			t.Fatalf("/ops did not render the ops page:\n%s", dom)
		}
		counts := enrollmentTable(dom)
		want := map[string]string{"pending": "0", "importing": "0", "imported": strconv.Itoa(n), "failed": "0", "rejected": "0"}
		for status, w := range want {
			if got, ok := counts[status]; !ok || got != w {
				t.Errorf("/ops enrollments table shows %s = %q (present %v), want %s; table %v", status, got, ok, w, counts)
			}
		}
		if !regexp.MustCompile(`<a [^>]*href="/ops/queues/?"`).MatchString(dom) {
			t.Errorf("/ops has no link to /ops/queues:\n%s", dom)
		}
		// Every contact went in one or more completed imports, and each
		// such import is a row of the recent imports table.
		rows := regexp.MustCompile(`<td>completed</td><td class="n">(\d+)</td>`).FindAllStringSubmatch(dom, -1)
		sum := 0
		for _, r := range rows {
			c, _ := strconv.Atoi(r[1])
			sum += c
		}
		if len(rows) == 0 || sum != n {
			t.Errorf("/ops recent imports list %d completed imports with %d contacts, want %d contacts", len(rows), sum, n)
		}
		for _, want := range []string{"Connected", "CC calls today", "Quarantine", "Recent CC imports", "No enrollment is waiting for CC"} {
			if !strings.Contains(dom, want) {
				t.Errorf("/ops lacks %q", want)
			}
		}
		if strings.Contains(dom, "Could not read") {
			t.Errorf("/ops reports a figure it could not read:\n%s", dom)
		}
	})

	t.Run("charts", func(t *testing.T) {
		dom, log := renderPageLogged(t, browser, base+"/ops", filepath.Join(artifacts, "ops-charts.png"), 0)
		// Chromium logs each thing the page's policy blocked as a console
		// message naming the policy; a chart drawn with a style attribute
		// would be one.
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "Content Security Policy") {
				t.Errorf("the page's policy blocked something: %s", line)
			}
		}
		// Every simulated contact was received and imported in the last
		// hours (this one, unless the test ran across the hour), and the
		// imports spent CC calls: each bar's tooltip gives its figure.
		svg := map[string]string{}
		for _, m := range regexp.MustCompile(`(?s)<svg [^>]*aria-labelledby="([a-z-]+)-title".*?</svg>`).FindAllStringSubmatch(dom, -1) {
			svg[m[1]] = m[0]
		}
		total := func(id, name string) int {
			sum := 0
			for _, m := range regexp.MustCompile(` UTC, `+name+`: ([0-9,]+)</title>`).FindAllStringSubmatch(svg[id], -1) {
				v, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
				sum += v
			}
			return sum
		}
		if got := total("chart-enrollments", "received"); got != n {
			t.Errorf("the enrollments chart shows %d received, want %d", got, n)
		}
		if got := total("chart-enrollments", "imported"); got != n {
			t.Errorf("the enrollments chart shows %d imported, want %d", got, n)
		}
		if got := total("chart-cc-calls", "CC calls"); got == 0 || !strings.Contains(svg["chart-cc-calls"], "daily budget spread over 24 h") {
			t.Errorf("the CC calls chart shows %d calls, or lacks the budget line", got)
		}
		if !strings.Contains(svg["chart-waiting"], "age of the oldest waiting") {
			t.Errorf("/ops has no chart of the oldest waiting enrollment's age")
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	})

	t.Run("queues", func(t *testing.T) {
		// Virtual time lets Asynqmon's scripts load, fetch the queues and
		// render before the DOM is read, without a fixed sleep.
		dom := renderPage(t, browser, base+"/ops/queues", filepath.Join(artifacts, "ops-queues.png"), 10*time.Second)
		writeArtifact(t, filepath.Join(artifacts, "ops-queues.html"), dom)
		// The server's HTML is an empty shell; the queue's row, a link to
		// its own page, exists only once the app has rendered the API's
		// answer, which needed the login too.
		if !regexp.MustCompile(`<a [^>]*href="/ops/queues/queues/hs2cc"[^>]*>hs2cc</a>`).MatchString(dom) {
			t.Errorf("Asynqmon did not render the hs2cc queue; DOM:\n%.4000s", dom)
		}
	})
	t.Logf("screenshots and DOMs in %s", artifacts)
}

// chromiumPath finds Debian's Chromium. Without it the test skips on a
// laptop, but fails under CI=true, where scripts/test installs it, so that
// CI cannot pass without ever opening a browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/test installs it under CI=true)")
	}
	t.Skip("chromium is not installed; HS2CC_INSTALL_BROWSER=1 scripts/test installs it")
	return ""
}

// artifactsDir is where the screenshots are kept: under HS2CC_ARTIFACTS,
// which CI collects after the run, or else in a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HS2CC_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeArtifact(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Error(err)
	}
}

// renderPage loads pageURL in headless Chromium once, returning the DOM as
// rendered and saving a 1280×900 screenshot to shot, which it checks is a
// real picture. A positive budget runs the page's scripts for that much
// virtual time first.
func renderPage(t *testing.T, browser, pageURL, shot string, budget time.Duration) string {
	t.Helper()
	dom, _ := renderPageLogged(t, browser, pageURL, shot, budget)
	return dom
}

// renderPageLogged is renderPage that also returns Chromium's log, where
// the page's console messages are, among them what its
// Content-Security-Policy blocked.
func renderPageLogged(t *testing.T, browser, pageURL, shot string, budget time.Duration) (dom, log string) {
	t.Helper()
	// A fresh profile per run means no login, cookie or cache carried over
	// from an earlier page could make a page look right.
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--hide-scrollbars", "--window-size=1280,900",
		"--dump-dom", "--screenshot=" + shot, "--enable-logging=stderr", "--v=0"}
	if budget > 0 {
		args = append(args, "--virtual-time-budget="+strconv.FormatInt(budget.Milliseconds(), 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, append(args, pageURL)...)
	// Chromium starts helper processes; its own process group lets a hung
	// browser be killed whole, and what outlives a clean exit be ended too,
	// so that none holds the profile directory or the output pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium on %s: %v\n%s", redact(pageURL), err, stderr.String())
	}
	checkScreenshot(t, shot)
	t.Logf("%s: DOM %d bytes, screenshot %s", redact(pageURL), stdout.Len(), shot)
	return stdout.String(), stderr.String()
}

// checkScreenshot fails unless path is a PNG of the window's size and big
// enough to hold more than an empty or error page.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(b) <= 10<<10 {
		t.Errorf("screenshot %s is %d bytes, want more than 10 KB", path, len(b))
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG", path)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if cfg.Width != 1280 || cfg.Height != 900 {
		t.Errorf("screenshot %s is %d×%d, want 1280×900", path, cfg.Width, cfg.Height)
	}
}

// enrollmentTable reads the first table of /ops, its status names over
// their counts, as a map from status to count.
func enrollmentTable(dom string) map[string]string {
	table := regexp.MustCompile(`(?s)<h2>Enrollments</h2>\s*<table>(.*?)</table>`).FindStringSubmatch(dom)
	if table == nil {
		return nil
	}
	cell := func(tag string) []string {
		var s []string
		for _, m := range regexp.MustCompile(`<`+tag+`[^>]*>([^<]*)</`+tag+`>`).FindAllStringSubmatch(table[1], -1) {
			s = append(s, strings.TrimSpace(html.UnescapeString(m[1])))
		}
		return s
	}
	heads, counts := cell("th"), cell("td")
	m := map[string]string{}
	for i, h := range heads {
		if i < len(counts) {
			m[h] = counts[i]
		}
	}
	return m
}

// redact hides the login in a URL for the test log.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

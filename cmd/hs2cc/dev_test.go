//go:build !nodev

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDevRunsTheWholeBridge is the README's promise as a new user meets it:
// `hs2cc dev` with nothing configured, then the printed simulate command,
// then every agent on "New Agents" in /sandbox/contacts and the queues in
// Asynqmon behind the printed login. It needs no MySQL or Redis server.
func TestDevRunsTheWholeBridge(t *testing.T) {
	addr, ccAddr, hsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--addr", addr, "--cc-addr", ccAddr, "--hs-addr", hsAddr, "--cc-activity-delay", "200ms"},
			func(string) string { return "" }, &out, &logs)
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
	for _, want := range []string{"http://" + addr + "/webhooks/hubspot", "http://" + addr + "/ops/queues",
		"http://" + ccAddr + "/sandbox/contacts", "http://" + hsAddr, "simulate --url"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	secret := regexp.MustCompile(`--secret '([^']+)'`).FindStringSubmatch(banner)
	login := regexp.MustCompile(`user "([^"]+)", password "([^"]+)"`).FindStringSubmatch(banner)
	if secret == nil || login == nil {
		t.Fatalf("banner lacks the secret or the login:\n%s", banner)
	}

	const n = 40
	if err := run(ctx, []string{"simulate", "--url", "http://" + addr + "/webhooks/hubspot", "--secret", secret[1],
		"--count", "40", "--concurrency", "4", "--repeats", "5", "--first-id", "900"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}

	var onList int
	waitFor(t, "every simulated agent on New Agents", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + ccAddr + "/sandbox/contacts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Contacts []struct {
				Email     string   `json:"email"`
				ListNames []string `json:"list_names"`
			} `json:"contacts"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		onList = 0
		for _, c := range body.Contacts {
			if len(c.ListNames) == 1 && c.ListNames[0] == "New Agents" {
				onList++
			}
		}
		return onList == n
	})

	// dev turns the write-back on against its HubSpot sandbox, on the
	// embedded MySQL: every agent's contact says where CC put it.
	var written int
	waitFor(t, "every simulated agent written back to the HubSpot sandbox", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + hsAddr + "/sandbox/contacts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Contacts []struct {
				ID         string            `json:"id"`
				Properties map[string]string `json:"properties"`
			} `json:"contacts"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		written = 0
		for _, c := range body.Contacts {
			if c.Properties["hs2cc_cc_status"] == "imported" && c.Properties["hs2cc_cc_lists"] == "New Agents" {
				written++
			}
		}
		return written == n
	})

	cases := []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no login", "", "", http.StatusUnauthorized},
		{"wrong password", login[1], "nope", http.StatusUnauthorized},
		{"printed login", login[1], login[2], http.StatusOK},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ops/queues/api/queues", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Queues []struct {
				Queue     string `json:"queue"`
				Processed int    `json:"processed"`
			} `json:"queues"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: /ops/queues answered %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && (len(body.Queues) != 1 || body.Queues[0].Queue != "hs2cc" || body.Queues[0].Processed == 0) {
			t.Errorf("%s: Asynqmon queues %+v, want the hs2cc queue with processed tasks", tc.name, body.Queues)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dev returned %v on shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not shut down within 30s")
	}
}

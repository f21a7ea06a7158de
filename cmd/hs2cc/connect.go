package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
)

// connectInput is where `hs2cc connect` reads a pasted redirect address; a
// variable so that tests can give it their own reader.
var connectInput io.Reader = os.Stdin

// callback is what came back from CC's consent page.
type callback struct {
	code, state, err string
	// reply, when set, takes the outcome for the browser that brought the
	// callback, so its page says whether the connection worked.
	reply chan string
}

func parseCallback(q url.Values) callback {
	e := q.Get("error")
	if d := q.Get("error_description"); e != "" && d != "" {
		e += ": " + d
	}
	return callback{code: q.Get("code"), state: q.Get("state"), err: e}
}

// runConnect connects CC from a terminal: it prints the consent URL, then
// waits for CC's redirect either on the redirect URI (when it points at this
// machine) or as an address pasted into the terminal (when the browser runs
// elsewhere and its redirect to localhost went nowhere), exchanges the code
// with PKCE and stores the sealed pair in MySQL, where every worker finds it.
func runConnect(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redirect := fs.String("redirect-url", cfg.CCRedirectURL, "OAuth redirect URI registered for the CC app (default HS2CC_CC_REDIRECT_URL)")
	listen := fs.String("listen", "", "address to receive the redirect on (default: the redirect URI's host when it is loopback)")
	timeout := fs.Duration("timeout", ccauth.StateTTL, "how long to wait for the consent")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := cfg.requireTokenKey(); err != nil {
		return err
	}
	if *redirect == "" {
		return errors.New("connect: set HS2CC_CC_REDIRECT_URL (or HS2CC_PUBLIC_URL, or --redirect-url) to the redirect URI registered for the CC app")
	}
	ru, err := url.Parse(*redirect)
	if err != nil || ru.Host == "" {
		return fmt.Errorf("connect: redirect URL %q is not an absolute URL", *redirect)
	}
	if *listen == "" && isLoopback(ru.Hostname()) {
		*listen = ru.Host
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	oauth := d.oauthConfig(cfg)
	oauth.RedirectURL = *redirect

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	results := make(chan callback, 2)
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("connect: listen for the redirect: %w", err)
		}
		srv := &http.Server{Handler: callbackHandler(ru.Path, results), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer func() {
			// Shutdown, not Close: the browser's page is written after
			// the outcome is known, just before this returns.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	go readPasted(connectInput, results)

	state, verifier := ccauth.NewState(), ccclient.NewVerifier()
	fmt.Fprintf(stdout, "Open this address in a browser, sign in to Constant Contact and allow access:\n\n  %s\n\n", oauth.AuthCodeURL(state, verifier))
	if *listen != "" {
		fmt.Fprintf(stdout, "Waiting for Constant Contact to send the browser back to %s …\n", *redirect)
		fmt.Fprintf(stdout, "If the browser runs on another machine, paste the address it ends on here and press Enter.\n")
	} else {
		fmt.Fprintf(stdout, "Then paste the address the browser ends on (%s?code=…) here and press Enter.\n", *redirect)
	}

	var cb callback
	select {
	case <-ctx.Done():
		return fmt.Errorf("connect: no answer from Constant Contact within %s; run hs2cc connect again", *timeout)
	case cb = <-results:
	}
	err = finishConnect(ctx, cb, state, func(code string) (*ccclient.Token, error) {
		return ccauth.ExchangeAndConnect(ctx, oauth, d.tokens(cfg, log), code, verifier)
	}, stdout)
	if cb.reply != nil {
		if err != nil {
			cb.reply <- "The connection failed: " + err.Error() + " See the terminal running hs2cc connect."
		} else {
			cb.reply <- "Constant Contact is connected. You can close this page."
		}
	}
	return err
}

// finishConnect checks the callback against the attempt's state and, when
// it matches, exchanges the code.
func finishConnect(ctx context.Context, cb callback, state string, exchange func(code string) (*ccclient.Token, error), stdout io.Writer) error {
	if cb.err != "" {
		return fmt.Errorf("connect: Constant Contact refused the connection: %s", cb.err)
	}
	if subtle.ConstantTimeCompare([]byte(cb.state), []byte(state)) != 1 {
		return errors.New("connect: the answer belongs to another connection attempt (state mismatch); run hs2cc connect again")
	}
	tok, err := exchange(cb.code)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	fmt.Fprintf(stdout, "Constant Contact is connected. The access token expires at %s; workers refresh it from now on.\n",
		tok.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var callbackPage = template.Must(template.New("cb").Parse(`<!doctype html>
<meta charset="utf-8"><title>hs2cc connect</title>
<p>{{.}}</p>`))

// callbackHandler receives CC's redirect for `hs2cc connect` and hands it on;
// the terminal reports the outcome.
func callbackHandler(path string, results chan<- callback) http.Handler {
	if path == "" {
		path = "/"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		cb := parseCallback(r.URL.Query())
		if cb.code == "" && cb.err == "" {
			http.Error(w, "missing code", http.StatusBadRequest)
			return
		}
		cb.reply = make(chan string, 1)
		msg := "This connection attempt was already answered; see the terminal running hs2cc connect."
		select {
		case results <- cb:
			select {
			case msg = <-cb.reply:
			case <-time.After(30 * time.Second):
				msg = "Still saving the connection; see the terminal running hs2cc connect for the result."
			case <-r.Context().Done():
				return
			}
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_ = callbackPage.Execute(w, msg)
	})
}

// readPasted reads lines until one is a redirect address with a code or an
// error.
func readPasted(r io.Reader, results chan<- callback) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		u, err := url.Parse(strings.TrimSpace(sc.Text()))
		if err != nil {
			continue
		}
		if cb := parseCallback(u.Query()); cb.code != "" || cb.err != "" {
			select {
			case results <- cb:
			default:
			}
			return
		}
	}
}

// connectThroughBridge opens /oauth/connect as ops would in a browser and
// follows the redirects: to the sandbox's consent page, which approves at
// once, and back to /oauth/callback, which stores the tokens once it sees
// the nonce cookie /oauth/connect set.
func connectThroughBridge(ctx context.Context, base, user, password string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/oauth/connect", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, password)
	// The jar carries the nonce cookie /oauth/connect sets back to
	// /oauth/callback, as a browser would.
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second, Jar: jar}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/oauth/callback" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("ended at %s with %d: %s", resp.Request.URL.Path, resp.StatusCode, body)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

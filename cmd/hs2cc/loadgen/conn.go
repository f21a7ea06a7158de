package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
)

// webhookConn is the load generator's HTTP/1.1 client: one kept-alive
// connection used by one goroutine, writing each request in one write and
// reading the answer on the same goroutine. simulate shares the machine
// with the bridge it measures, and net/http's client costs about twice the
// CPU per request (a reader and a writer goroutine per connection, pooling,
// header maps), which the bridge would then be charged for.
type webhookConn struct {
	target  *url.URL
	signURL string
	secret  string
	conn    net.Conn
	br      *bufio.Reader
	buf     []byte
}

func newWebhookConn(target, signURL, secret string) (*webhookConn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("simulate: %s: only http:// URLs can be loaded (put TLS in front separately)", target)
	}
	if signURL == "" {
		signURL = target
	}
	return &webhookConn{target: u, signURL: signURL, secret: secret}, nil
}

// send posts body signed as HubSpot would and returns the status. A broken
// connection is dropped, and the next send dials a new one; the request is
// not repeated, since the bridge may have stored it.
func (w *webhookConn) send(ctx context.Context, body []byte) (int, error) {
	if w.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", hostPort(w.target))
		if err != nil {
			return 0, err
		}
		w.conn, w.br = c, bufio.NewReaderSize(c, 4096)
	}
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = w.conn.SetDeadline(deadline)
	w.buf = w.request(w.buf[:0], body)
	status, keep, err := w.roundTrip()
	if err != nil || !keep {
		w.conn.Close()
		w.conn = nil
	}
	return status, err
}

func (w *webhookConn) roundTrip() (status int, keep bool, err error) {
	if _, err := w.conn.Write(w.buf); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err == nil && !resp.Close, err
}

// request appends the whole HTTP request: the headers Sign gives, the ones
// HubSpot sends, and the body.
func (w *webhookConn) request(b, body []byte) []byte {
	path := w.target.RequestURI()
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, w.target.Host...)
	b = append(b, "\r\nContent-Type: application/json\r\nUser-Agent: HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks) hs2cc-simulate\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	for k, vs := range hubspot.Sign(w.secret, http.MethodPost, w.signURL, body, time.Now()) {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

func (w *webhookConn) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// hostPort is u's host with the scheme's port when it names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

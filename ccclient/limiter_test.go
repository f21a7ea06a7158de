package ccclient

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingLimiter records, for each Wait, how many requests the server had
// seen by then, so that a test can tell that every exchange waited first.
type countingLimiter struct {
	mu     sync.Mutex
	served *atomic.Int32
	seen   []int32 // server requests at each Wait
	err    error   // returned by every Wait when set
	block  bool    // Wait blocks until ctx is done
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	l.seen = append(l.seen, l.served.Load())
	l.mu.Unlock()
	if l.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return l.err
}

func (l *countingLimiter) waits() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int32(nil), l.seen...)
}

// TestLimiterWaitsBeforeEveryExchange: CC counts every request, a 401 and
// its retry as two, toward its per-second and daily limits, so the limiter
// must be asked before each one; a refusal must stop the call before
// anything is sent.
func TestLimiterWaitsBeforeEveryExchange(t *testing.T) {
	errBudget := errors.New("budget spent")
	tests := []struct {
		name       string
		limitErr   error // every Wait returns it
		block      bool  // every Wait blocks until the context ends
		source     TokenSource
		statuses   []int // the server's answers, in order
		timeout    time.Duration
		wantErr    error // matched with errors.Is; nil means success
		wantServed int32
		wantWaits  []int32 // requests the server had seen at each Wait
	}{
		{
			name:       "one call, one wait",
			statuses:   []int{200},
			wantServed: 1,
			wantWaits:  []int32{0},
		},
		{
			name:       "a 401 retry waits again",
			source:     &swapSource{tokens: []string{"old-token", "new-token"}},
			statuses:   []int{401, 200},
			wantServed: 2,
			wantWaits:  []int32{0, 1},
		},
		{
			name:       "a refused wait sends nothing",
			limitErr:   errBudget,
			statuses:   []int{200},
			wantErr:    errBudget,
			wantServed: 0,
			wantWaits:  []int32{0},
		},
		{
			name:       "a wait cut short by the context sends nothing",
			block:      true,
			statuses:   []int{200},
			timeout:    50 * time.Millisecond,
			wantErr:    context.DeadlineExceeded,
			wantServed: 0,
			wantWaits:  []int32{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served atomic.Int32
			lim := &countingLimiter{served: &served, err: tt.limitErr, block: tt.block}
			c, mux, _ := setup(t, tt.source, WithLimiter(lim))
			mux.HandleFunc("GET /v3/activities/a1", func(w http.ResponseWriter, r *http.Request) {
				n := served.Add(1)
				switch st := tt.statuses[n-1]; st {
				case 401:
					writeJSON(w, 401, `{"error_key":"unauthorized","error_message":"Unauthorized"}`)
				default:
					writeJSON(w, st, `{"activity_id":"a1","state":"completed"}`)
				}
			})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			a, err := c.GetActivity(ctx, "a1")
			switch {
			case tt.wantErr == nil && (err != nil || a.ActivityID != "a1"):
				t.Fatalf("GetActivity = %+v, %v; want the activity", a, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("GetActivity error %v, want %v", err, tt.wantErr)
			}
			if got := served.Load(); got != tt.wantServed {
				t.Errorf("server saw %d requests, want %d", got, tt.wantServed)
			}
			got := lim.waits()
			if len(got) != len(tt.wantWaits) {
				t.Fatalf("%d waits %v, want %v", len(got), got, tt.wantWaits)
			}
			for i := range got {
				if got[i] != tt.wantWaits[i] {
					t.Errorf("wait %d came after %d requests, want %d", i, got[i], tt.wantWaits[i])
				}
			}
		})
	}
}

// TestLimiterWaitsForEveryPage: a paged read is one exchange per page, and
// each counts toward CC's limits.
func TestLimiterWaitsForEveryPage(t *testing.T) {
	var served atomic.Int32
	lim := &countingLimiter{served: &served}
	c, mux, _ := setup(t, nil, WithLimiter(lim))
	mux.HandleFunc("GET /v3/contacts", func(w http.ResponseWriter, r *http.Request) {
		switch served.Add(1) {
		case 1:
			writeJSON(w, 200, `{"contacts":[{"contact_id":"c1","email_address":{"address":"a@example.com","permission_to_send":"unsubscribed"}}],
				"_links":{"next":{"href":"/v3/contacts?cursor=2"}}}`)
		case 2:
			writeJSON(w, 200, `{"contacts":[{"contact_id":"c2","email_address":{"address":"b@example.com","permission_to_send":"unsubscribed"}}],
				"_links":{"next":{"href":"/v3/contacts?cursor=3"}}}`)
		default:
			writeJSON(w, 200, `{"contacts":[{"contact_id":"c3","email_address":{"address":"c@example.com","permission_to_send":"unsubscribed"}}]}`)
		}
	})
	emails, complete, err := c.UnsubscribedEmails(context.Background(), 10)
	if err != nil || !complete || len(emails) != 3 {
		t.Fatalf("UnsubscribedEmails = %v, %v, %v; want 3 emails, complete", emails, complete, err)
	}
	got := lim.waits()
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Errorf("waits came after %v requests, want [0 1 2]", got)
	}
}

// callLog records, in order, the steps of one call across the fakes that
// take part in it.
type callLog struct {
	mu    sync.Mutex
	steps []string
}

func (l *callLog) add(step string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, step)
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.steps...)
}

// orderLimiter logs each Wait and answers err.
type orderLimiter struct {
	log *callLog
	err error
}

func (l *orderLimiter) Wait(context.Context) error {
	l.log.add("wait")
	return l.err
}

// orderSource logs each Token and Invalidate; it hands out tokens[0], then
// the next after each Invalidate while there is one.
type orderSource struct {
	log    *callLog
	mu     sync.Mutex
	tokens []string
	i      int
}

func (s *orderSource) Token(context.Context) (string, error) {
	s.log.add("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[s.i], nil
}

func (s *orderSource) Invalidate(context.Context, string) error {
	s.log.add("invalidate")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.i < len(s.tokens)-1 {
		s.i++
	}
	return nil
}

// TestLimiterWaitsBeforeToken: a call waits for its rate slot before it
// takes a token, so that a long wait (tasks share four calls a second) does
// not age a short-lived token before it is sent; the retry after a 401 gets
// its fresh token first, then waits, then sends. A refused wait takes no
// token at all, and a 401 with no newer token spends no second slot.
func TestLimiterWaitsBeforeToken(t *testing.T) {
	errBudget := errors.New("budget spent")
	tests := []struct {
		name     string
		tokens   []string
		statuses []int // the server's answers, in order
		limitErr error
		wantErr  bool
		want     []string
	}{
		{
			name:     "a call",
			tokens:   []string{"tok-1"},
			statuses: []int{200},
			want:     []string{"wait", "token", "send tok-1"},
		},
		{
			name:     "a retry after a 401",
			tokens:   []string{"tok-old", "tok-new"},
			statuses: []int{401, 200},
			want:     []string{"wait", "token", "send tok-old", "invalidate", "token", "wait", "send tok-new"},
		},
		{
			name:     "a 401 with no newer token",
			tokens:   []string{"tok-only"},
			statuses: []int{401},
			wantErr:  true,
			want:     []string{"wait", "token", "send tok-only", "invalidate", "token"},
		},
		{
			name:     "a refused wait",
			tokens:   []string{"tok-1"},
			statuses: []int{200},
			limitErr: errBudget,
			wantErr:  true,
			want:     []string{"wait"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &callLog{}
			src := &orderSource{log: log, tokens: tt.tokens}
			c, mux, _ := setup(t, src, WithLimiter(&orderLimiter{log: log, err: tt.limitErr}))
			var served atomic.Int32
			mux.HandleFunc("GET /v3/activities/a1", func(w http.ResponseWriter, r *http.Request) {
				n := served.Add(1)
				log.add("send " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				if tt.statuses[n-1] == 401 {
					writeJSON(w, 401, `{"error_key":"unauthorized","error_message":"Unauthorized"}`)
					return
				}
				writeJSON(w, 200, `{"activity_id":"a1","state":"completed"}`)
			})
			_, err := c.GetActivity(context.Background(), "a1")
			switch {
			case tt.wantErr && err == nil:
				t.Error("GetActivity succeeded, want an error")
			case !tt.wantErr && err != nil:
				t.Errorf("GetActivity: %v", err)
			case tt.limitErr != nil && !errors.Is(err, tt.limitErr):
				t.Errorf("GetActivity error %v, want the limiter's %v", err, tt.limitErr)
			}
			if got := log.get(); !slices.Equal(got, tt.want) {
				t.Errorf("steps %q, want %q", got, tt.want)
			}
		})
	}
}

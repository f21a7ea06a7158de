package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// ListAPI is the part of the CC client that finds and makes lists;
// *ccclient.Client is one.
type ListAPI interface {
	ContactListByName(ctx context.Context, name string) (*ccclient.ContactList, error)
	CreateContactList(ctx context.Context, name, description string) (*ccclient.ContactList, error)
}

// AttentionStore records the states that stop work until a person acts, so
// that every process and every place ops look sees them; *store.DB is one.
type AttentionStore interface {
	RaiseAttention(ctx context.Context, kind, subject, detail string) error
	ClearAttention(ctx context.Context, kind, subject string) error
	KeepAttention(ctx context.Context, kind string, keep []string) error
	GetAttention(ctx context.Context, kind, subject string) (*store.Attention, error)
}

// ListPolicy is what the routing rules say about CC lists: every name they
// can route to, and whether a missing one may be created.
type ListPolicy struct {
	Names  []string
	Create bool
}

// MissingListError means a CC list the rules name does not exist and the
// rules do not allow creating it. Enrollments bound for it wait, pending,
// until it exists; it is recorded as attention meanwhile.
type MissingListError struct {
	Name string
}

func (e *MissingListError) Error() string {
	return fmt.Sprintf("CC list %q does not exist and the routing rules do not allow creating it", e.Name)
}

// missingListAdvice is what ops read beside a missing list.
const missingListAdvice = "create it in Constant Contact, or set create_missing_lists: true in the routing rules (HS2CC_ROUTES); enrollments bound for it wait until then"

// listRecheck is how often a missing list is looked for again in CC, across
// every process together (the attention row's checked_at is shared). It
// costs one CC call each time, about 2,900 a day at most while enrollments
// wait for the list; with the waiting task's own poll it brings them to CC
// within a minute of the list appearing.
const listRecheck = 30 * time.Second

// listCallTries bounds the calls one lookup makes while CC throttles or
// fails; past it the caller is told to wait (a waitError), which spends no
// task retry.
const listCallTries = 4

// ListResolver turns CC list names into ids for the whole process, and is
// the one place that decides what happens to a list name: found and cached,
// created when the rules allow it, or recorded as missing. Start-up, the
// check when CC gets connected, the periodic check and every import use it.
type ListResolver struct {
	cc      ListAPI
	store   AttentionStore
	policy  ListPolicy
	log     *slog.Logger
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
	recheck time.Duration

	mu  sync.Mutex
	ids map[string]string // list name → CC list id; ids never change while a list exists
}

// NewListResolver builds the resolver of one process.
func NewListResolver(cc ListAPI, st AttentionStore, policy ListPolicy, log *slog.Logger) *ListResolver {
	return &ListResolver{cc: cc, store: st, policy: policy, log: log, now: time.Now, sleep: sleepCtx,
		recheck: listRecheck, ids: map[string]string{}}
}

// Resolve returns the CC list ids of names, in the order of the sorted
// names, looking up (and, when allowed, creating) those not yet known. Its
// errors: ErrNotConnected (wrapped) before CC is connected, a
// *MissingListError for the first missing list, a *waitError while CC
// throttles or fails, and anything else CC or MySQL answered.
func (r *ListResolver) Resolve(ctx context.Context, names []string) ([]string, error) {
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	ids := make([]string, 0, len(sorted))
	for _, name := range sorted {
		id, err := r.id(ctx, name)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// CheckAll resolves every list the rules can name. It records each missing
// one as attention, clears what it found, forgets states of names the rules
// no longer hold, and returns the missing names. CC not connected, or
// throttling or failing, is returned as an error for the caller to try
// again later.
func (r *ListResolver) CheckAll(ctx context.Context) ([]string, error) {
	if err := r.store.KeepAttention(ctx, store.AttentionMissingList, r.policy.Names); err != nil {
		return nil, err
	}
	var missing []string
	for _, name := range r.policy.Names {
		_, err := r.id(ctx, name)
		var m *MissingListError
		switch {
		case errors.As(err, &m):
			missing = append(missing, name)
		case err != nil:
			return missing, err
		}
	}
	return missing, nil
}

// Forget drops the cached ids of names, so that they are looked up again:
// CC refused an import naming them, and a list deleted in CC after it was
// cached is the likely cause.
func (r *ListResolver) Forget(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		delete(r.ids, n)
	}
}

// Known returns the ids cached so far, by name.
func (r *ListResolver) Known() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.ids))
	for k, v := range r.ids {
		out[k] = v
	}
	return out
}

func (r *ListResolver) cached(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.ids[name]
	return id, ok
}

func (r *ListResolver) id(ctx context.Context, name string) (string, error) {
	if id, ok := r.cached(name); ok {
		return id, nil
	}
	known, err := r.store.GetAttention(ctx, store.AttentionMissingList, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		known = nil
	case err != nil:
		return "", err
	case !r.policy.Create && r.now().Sub(known.CheckedAt) < r.recheck:
		// Another look this soon would spend a CC call to learn what a
		// process learned moments ago.
		return "", &MissingListError{Name: name}
	}
	l, err := r.call(ctx, func() (*ccclient.ContactList, error) { return r.cc.ContactListByName(ctx, name) })
	switch {
	case err == nil:
	case !errors.Is(err, ccclient.ErrNotFound):
		return "", fmt.Errorf("find CC list %q: %w", name, err)
	case !r.policy.Create:
		if err := r.store.RaiseAttention(ctx, store.AttentionMissingList, name, fmt.Sprintf("CC list %q does not exist: %s", name, missingListAdvice)); err != nil {
			return "", err
		}
		if known == nil {
			r.log.Error("a CC list named by the routing rules does not exist, and the rules do not allow creating it; enrollments bound for it wait",
				"list", name, "what_to_do", missingListAdvice)
		}
		return "", &MissingListError{Name: name}
	default:
		if l, err = r.create(ctx, name); err != nil {
			return "", err
		}
	}
	if known != nil {
		if err := r.store.ClearAttention(ctx, store.AttentionMissingList, name); err != nil {
			return "", err
		}
		r.log.Info("a CC list that was missing exists now; enrollments waiting for it go ahead", "list", name)
	}
	r.mu.Lock()
	r.ids[name] = l.ListID
	r.mu.Unlock()
	return l.ListID, nil
}

// create makes a missing list. A 409 means another process made it a moment
// ago, and looking it up again finds it.
func (r *ListResolver) create(ctx context.Context, name string) (*ccclient.ContactList, error) {
	l, err := r.call(ctx, func() (*ccclient.ContactList, error) {
		return r.cc.CreateContactList(ctx, name, "Created by hs2cc for its routing rules")
	})
	var apiErr *ccclient.APIError
	if errors.As(err, &apiErr) && apiErr.Conflict() {
		l, err = r.call(ctx, func() (*ccclient.ContactList, error) { return r.cc.ContactListByName(ctx, name) })
	}
	if err != nil {
		return nil, fmt.Errorf("create CC list %q: %w", name, err)
	}
	r.log.Info("created a CC list named by the routing rules", "list", name)
	return l, nil
}

// call makes one list call, waiting out CC's throttle and passing faults a
// few times in the process; if they last, it returns a waitError so that a
// task waits without spending a retry.
func (r *ListResolver) call(ctx context.Context, fn func() (*ccclient.ContactList, error)) (*ccclient.ContactList, error) {
	delay := time.Second
	for try := 1; ; try++ {
		l, err := fn()
		if err == nil || !passing(err) {
			return l, err
		}
		if try == listCallTries {
			return nil, &waitError{after: 5 * time.Second, reason: "CC lists: " + err.Error()}
		}
		if serr := r.sleep(ctx, delay); serr != nil {
			return nil, serr
		}
		delay = min(2*delay, 4*time.Second)
	}
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

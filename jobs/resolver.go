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

// Catalog is the part of the CC client that finds and makes what the rules
// name in the account: lists and custom fields; *ccclient.Client is one.
type Catalog interface {
	ContactListByName(ctx context.Context, name string) (*ccclient.ContactList, error)
	CreateContactList(ctx context.Context, name, description string) (*ccclient.ContactList, error)
	CustomFields(ctx context.Context) ([]ccclient.CustomField, error)
	CreateCustomField(ctx context.Context, label string) (*ccclient.CustomField, error)
}

// AttentionStore records the states that stop work until a person acts, so
// that every process and every place ops look sees them; *store.DB is one.
type AttentionStore interface {
	RaiseAttention(ctx context.Context, kind, subject, detail string) error
	ClearAttention(ctx context.Context, kind, subject string) error
	KeepAttention(ctx context.Context, kind string, keep []string) error
	GetAttention(ctx context.Context, kind, subject string) (*store.Attention, error)
}

// Policy is what the routing rules say about the account: every list they
// can route to and every custom field they map to, and whether a missing
// one of each may be created.
type Policy struct {
	Lists        []string
	CreateLists  bool
	Fields       []string
	CreateFields bool
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

// MissingFieldError means CC custom fields the rules map to do not exist
// and the rules do not allow creating them: CC would drop their values from
// every contact without a word, so imports wait until they exist.
type MissingFieldError struct {
	Names []string
}

func (e *MissingFieldError) Error() string {
	return fmt.Sprintf("CC custom fields %q do not exist and the routing rules do not allow creating them", e.Names)
}

// missingFieldAdvice is what ops read beside a missing custom field.
const missingFieldAdvice = "CC drops the value of a field it does not have. Create it in Constant Contact (its name, not its label, must match), or set create_missing_fields: true in the routing rules (HS2CC_ROUTES); imports wait until then"

// recheck is how often something missing is looked for again in CC,
// across every process together (the attention row's checked_at is
// shared). It costs one CC call each time, about 2,900 a day at most while
// enrollments wait; with the waiting task's own poll it brings them to CC
// within a minute of the thing appearing.
const recheck = 30 * time.Second

// callTries bounds the calls one lookup makes while CC throttles or fails;
// past it the caller is told to wait (a waitError), which spends no task
// retry.
const callTries = 4

// Resolver turns what the routing rules name into what CC knows, for the
// whole process, and is the one place that decides what happens to a name:
// a list is found and its id cached, created when the rules allow it, or
// recorded as missing; likewise the custom fields the rules map to.
// Start-up, the check when CC gets connected, the periodic check and every
// import use it.
type Resolver struct {
	cc      Catalog
	store   AttentionStore
	policy  Policy
	log     *slog.Logger
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
	recheck time.Duration

	mu       sync.Mutex
	ids      map[string]string // list name → CC list id; ids never change while a list exists
	fieldsOK bool              // every custom field of the policy exists
}

// NewResolver builds the resolver of one process.
func NewResolver(cc Catalog, st AttentionStore, policy Policy, log *slog.Logger) *Resolver {
	return &Resolver{cc: cc, store: st, policy: policy, log: log, now: time.Now, sleep: sleepCtx,
		recheck: recheck, ids: map[string]string{}}
}

// Resolve makes sure the custom fields the rules map to exist, and returns
// the CC list ids of names in the order of the sorted names, looking up
// (and, when allowed, creating) those not yet known. Its errors:
// ccauth.ErrNotConnected (wrapped) before CC is connected, a *MissingFieldError,
// a *MissingListError for the first missing list, a *waitError while CC
// throttles or fails, and anything else CC or MySQL answered.
func (r *Resolver) Resolve(ctx context.Context, names []string) ([]string, error) {
	if _, err := r.fields(ctx); err != nil {
		return nil, err
	}
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

// CheckAll checks every list and custom field the rules name. It records
// each missing one as attention, clears what it found, forgets states of
// names the rules no longer hold, and returns the missing names (fields as
// "cf:<name>"). CC not connected, or throttling or failing, is returned as
// an error for the caller to try again later.
func (r *Resolver) CheckAll(ctx context.Context) ([]string, error) {
	if err := r.store.KeepAttention(ctx, store.AttentionMissingList, r.policy.Lists); err != nil {
		return nil, err
	}
	if err := r.store.KeepAttention(ctx, store.AttentionMissingField, r.policy.Fields); err != nil {
		return nil, err
	}
	missing, err := r.fields(ctx)
	var mf *MissingFieldError
	if err != nil && !errors.As(err, &mf) {
		return nil, err
	}
	for _, name := range r.policy.Lists {
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
func (r *Resolver) Forget(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		delete(r.ids, n)
	}
}

func (r *Resolver) cached(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.ids[name]
	return id, ok
}

func (r *Resolver) id(ctx context.Context, name string) (string, error) {
	if id, ok := r.cached(name); ok {
		return id, nil
	}
	known, err := r.store.GetAttention(ctx, store.AttentionMissingList, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		known = nil
	case err != nil:
		return "", err
	case !r.policy.CreateLists && r.now().Sub(known.CheckedAt) < r.recheck:
		// Another look this soon would spend a CC call to learn what a
		// process learned moments ago.
		return "", &MissingListError{Name: name}
	}
	l, err := call(ctx, r, func() (*ccclient.ContactList, error) { return r.cc.ContactListByName(ctx, name) })
	switch {
	case err == nil:
	case !errors.Is(err, ccclient.ErrNotFound):
		return "", fmt.Errorf("find CC list %q: %w", name, err)
	case !r.policy.CreateLists:
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
func (r *Resolver) create(ctx context.Context, name string) (*ccclient.ContactList, error) {
	l, err := call(ctx, r, func() (*ccclient.ContactList, error) {
		return r.cc.CreateContactList(ctx, name, "Created by hs2cc for its routing rules")
	})
	var apiErr *ccclient.APIError
	if errors.As(err, &apiErr) && apiErr.Conflict() {
		l, err = call(ctx, r, func() (*ccclient.ContactList, error) { return r.cc.ContactListByName(ctx, name) })
	}
	if err != nil {
		return nil, fmt.Errorf("create CC list %q: %w", name, err)
	}
	r.log.Info("created a CC list named by the routing rules", "list", name)
	return l, nil
}

// call makes one call to CC's catalog, waiting out CC's throttle and
// passing faults a few times in the process; if they last, it returns a
// waitError so that a task waits without spending a retry.
func call[T any](ctx context.Context, r *Resolver, fn func() (T, error)) (T, error) {
	delay := time.Second
	for try := 1; ; try++ {
		v, err := fn()
		if err == nil || !passing(err) {
			return v, err
		}
		if try == callTries {
			var zero T
			return zero, &waitError{after: 5 * time.Second, reason: "CC: " + err.Error()}
		}
		if serr := r.sleep(ctx, delay); serr != nil {
			var zero T
			return zero, serr
		}
		delay = min(2*delay, 4*time.Second)
	}
}

// fields makes sure every custom field the rules map to exists in CC,
// creating the missing ones when the rules allow it, and otherwise records
// each as attention and returns a *MissingFieldError naming them (and the
// names, as "cf:<name>"). Once all exist it costs nothing; while some are
// missing, CC is asked again at most once per recheck interval.
func (r *Resolver) fields(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	ok := r.fieldsOK
	r.mu.Unlock()
	if ok || len(r.policy.Fields) == 0 {
		return nil, nil
	}
	if !r.policy.CreateFields {
		var recent []string
		for _, name := range r.policy.Fields {
			a, err := r.store.GetAttention(ctx, store.AttentionMissingField, name)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, err
			case r.now().Sub(a.CheckedAt) < r.recheck:
				recent = append(recent, name)
			}
		}
		if len(recent) > 0 {
			return prefixed(recent), &MissingFieldError{Names: recent}
		}
	}
	have, err := call(ctx, r, func() ([]ccclient.CustomField, error) { return r.cc.CustomFields(ctx) })
	if err != nil {
		return nil, fmt.Errorf("list CC custom fields: %w", err)
	}
	names := make(map[string]bool, len(have))
	for _, f := range have {
		names[f.Name] = true
	}
	var missing []string
	for _, name := range r.policy.Fields {
		if names[name] {
			if err := r.store.ClearAttention(ctx, store.AttentionMissingField, name); err != nil {
				return nil, err
			}
			continue
		}
		if r.policy.CreateFields {
			if err := r.createField(ctx, name); err != nil {
				return nil, err
			}
			continue
		}
		missing = append(missing, name)
		if err := r.store.RaiseAttention(ctx, store.AttentionMissingField, name,
			fmt.Sprintf("CC custom field %q (cf:%s in the routing rules) does not exist: %s", name, name, missingFieldAdvice)); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		r.log.Error("CC custom fields the routing rules map to do not exist, and the rules do not allow creating them; imports wait",
			"fields", missing, "what_to_do", missingFieldAdvice)
		return prefixed(missing), &MissingFieldError{Names: missing}
	}
	r.mu.Lock()
	r.fieldsOK = true
	r.mu.Unlock()
	return nil, nil
}

// createField makes a missing text field whose label is its name. A 409
// means another process made it a moment ago. CC derives a field's name
// from its label; one that came out otherwise is attention, since the
// rules' cf: key would still miss it.
func (r *Resolver) createField(ctx context.Context, name string) error {
	f, err := call(ctx, r, func() (*ccclient.CustomField, error) { return r.cc.CreateCustomField(ctx, name) })
	var apiErr *ccclient.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Conflict():
		return nil
	case err != nil:
		return fmt.Errorf("create CC custom field %q: %w", name, err)
	case f.Name != "" && f.Name != name:
		if err := r.store.RaiseAttention(ctx, store.AttentionMissingField, name,
			fmt.Sprintf("CC named the custom field created for cf:%s %q; map the rules to cf:%s or rename the field", name, f.Name, f.Name)); err != nil {
			return err
		}
		return &MissingFieldError{Names: []string{name}}
	}
	if err := r.store.ClearAttention(ctx, store.AttentionMissingField, name); err != nil {
		return err
	}
	r.log.Info("created a CC custom field the routing rules map to", "field", name)
	return nil
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "cf:" + n
	}
	return out
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

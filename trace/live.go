package trace

import (
	"context"
	"slices"
	"time"
)

// Live is what CC holds for the contact now, next to what the bridge
// believes.
type Live struct {
	CheckedAt time.Time `json:"checked_at"`
	Email     string    `json:"email"`
	// InCC is false when CC has no contact with the email.
	InCC      bool   `json:"in_cc"`
	ContactID string `json:"contact_id,omitempty"`
	// EmailStatus is CC's permission_to_send: implicit, explicit,
	// unsubscribed, …
	EmailStatus string `json:"email_status,omitempty"`
	// Lists are the lists CC has the contact on, by name where an import
	// of the contact named them, else by id.
	Lists []string `json:"lists"`
	// Expected are the lists the bridge imported the contact onto, and
	// Missing those of them CC no longer has it on.
	Expected []string `json:"expected"`
	Missing  []string `json:"missing"`
	// Error says why CC could not be asked; the rest is then empty.
	Error string `json:"error,omitempty"`
}

// liveTimeout bounds the one CC call, limiter wait included, so that a
// spent budget or a slow CC cannot hold a page or a terminal for long.
const liveTimeout = 15 * time.Second

// live asks CC for the contact with email, spending one call through
// opt.CC, whose limiter counts it in the shared budget.
func live(ctx context.Context, opt Options, email string, expected []string, names map[string]string) *Live {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	l := &Live{CheckedAt: now().UTC(), Email: email, Lists: []string{}, Expected: nonNil(expected), Missing: []string{}}
	switch {
	case opt.CC == nil:
		l.Error = errNoCC.Error()
		return l
	case email == "":
		l.Error = "the bridge knows no email for this contact"
		return l
	}
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	c, err := opt.CC.ContactByEmail(ctx, email)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	if c != nil {
		l.InCC, l.ContactID, l.EmailStatus = true, c.ContactID, c.PermissionToSend
		for _, id := range c.ListMemberships {
			if n, ok := names[id]; ok {
				id = n
			}
			l.Lists = append(l.Lists, id)
		}
		slices.Sort(l.Lists)
	}
	for _, want := range l.Expected {
		if !slices.Contains(l.Lists, want) {
			l.Missing = append(l.Missing, want)
		}
	}
	return l
}

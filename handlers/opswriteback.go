package handlers

import (
	"context"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// HubSpotWriteback is what /ops shows of the HubSpot write-back: the outbox
// (*store.DB) and, when it is on, the shared HubSpot call count
// (*store.HubSpotLimits, through HubSpotCalls).
type HubSpotWriteback interface {
	WritebackEnabled() bool
	SummarizeWriteback(ctx context.Context) (store.WritebackSummary, error)
	GetUnsubscribeSync(ctx context.Context) (store.UnsubscribeSync, error)
}

// HubSpotCalls is today's count of HubSpot calls and any pause a 429 asked
// for; *store.HubSpotLimits is one.
type HubSpotCalls interface {
	Used(ctx context.Context) (int, error)
	Daily() int
	PausedUntil(ctx context.Context) (time.Time, bool, error)
}

// writebackReport is the HubSpot write-back: off (and why) or the outbox by
// state, its oldest pending row, HubSpot's calls today and the last
// unsubscribe sync.
type writebackReport struct {
	Enabled   bool   `json:"enabled"`
	OffReason string `json:"off_reason,omitempty"`
	// Outbox counts the contacts by write-back state: pending, written,
	// missing (deleted in HubSpot, skipped), no_id, failed.
	Outbox                  map[string]int `json:"outbox,omitempty"`
	OldestPendingAgeSeconds *int64         `json:"oldest_pending_age_seconds,omitempty"`
	LastError               string         `json:"last_error,omitempty"`
	LastWritten             *time.Time     `json:"last_written,omitempty"`
	CallsToday              *int64         `json:"hubspot_calls_today,omitempty"`
	DailyLimit              int            `json:"hubspot_daily_limit,omitempty"`
	PausedUntil             *time.Time     `json:"hubspot_paused_until,omitempty"`
	PausedDaily             bool           `json:"hubspot_paused_daily,omitempty"`
	Unsubscribes            *unsubReport   `json:"unsubscribe_sync,omitempty"`
}

// unsubReport is the last run of hubspot:unsubscribes.
type unsubReport struct {
	RanAt    time.Time  `json:"ran_at"`
	SyncedTo *time.Time `json:"synced_to,omitempty"`
	Outcome  string     `json:"outcome"`
	Detail   string     `json:"detail,omitempty"`
	Found    int        `json:"found"`
	Marked   int        `json:"marked"`
	CCPages  int        `json:"cc_pages"`
}

// writebackOff is why the write-back is off, for /ops and status.
const writebackOff = "HS2CC_HUBSPOT_TOKEN is not set: nothing is written to HubSpot"

// writeback reads the HubSpot write-back's figures, when the ops data can.
func (c *opsCollector) writeback() {
	wb, ok := c.cfg.Ops.(HubSpotWriteback)
	if !ok {
		return
	}
	r := &writebackReport{Enabled: wb.WritebackEnabled()}
	c.r.Writeback = r
	if !r.Enabled {
		r.OffReason = writebackOff
		return
	}
	sum, err := wb.SummarizeWriteback(c.ctx)
	if err != nil {
		c.fail("hubspot_writeback", err)
		return
	}
	r.Outbox = map[string]int{}
	for _, s := range store.WritebackStates {
		r.Outbox[s] = sum.Counts[s]
	}
	if !sum.OldestPending.IsZero() {
		age := int64(c.now.Sub(sum.OldestPending).Seconds())
		r.OldestPendingAgeSeconds = &age
	}
	r.LastError, r.LastWritten = sum.LastError, timePtr(sum.LastWritten)
	if u, err := wb.GetUnsubscribeSync(c.ctx); err != nil {
		c.fail("unsubscribe_sync", err)
	} else if !u.RanAt.IsZero() {
		r.Unsubscribes = &unsubReport{RanAt: u.RanAt.UTC(), SyncedTo: timePtr(u.SyncedTo), Outcome: u.Outcome,
			Detail: u.Detail, Found: u.Found, Marked: u.Marked, CCPages: u.CCPages}
	}
	if c.cfg.HubSpotCalls == nil {
		return
	}
	r.DailyLimit = c.cfg.HubSpotCalls.Daily()
	if used, err := c.cfg.HubSpotCalls.Used(c.ctx); err != nil {
		c.fail("hubspot_calls", err)
	} else {
		n := int64(used)
		r.CallsToday = &n
	}
	if until, daily, err := c.cfg.HubSpotCalls.PausedUntil(c.ctx); err != nil {
		c.fail("hubspot_calls", err)
	} else if until.After(c.now) {
		r.PausedUntil, r.PausedDaily = timePtr(until), daily
	}
}

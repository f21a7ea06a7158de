package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// tooLarge records the webhook requests refused for the size of their body.
// HubSpot never retries the 413 they get, so a workflow contact whose
// history outgrew the limit would otherwise be lost without a trace: each
// is kept as a delivery with verdict too_large (when, how large, the
// headers, the first 64 KiB), counted in the metrics and shown on /ops.
// Keeping one never changes the answer, and is bounded like the quarantine.
type tooLarge struct {
	st     Store
	limit  int64
	log    *slog.Logger
	writes *evidenceWrites
	drops  *dropLog
}

func newTooLarge(cfg Config, st Store, limit int64) *tooLarge {
	return &tooLarge{
		st: st, limit: limit, log: cfg.Logger, writes: newEvidenceWrites(),
		drops: newDropLog(cfg.Logger, time.Now, "webhook bodies over the limit were answered 413 but not recorded",
			[]string{dropBusy}, "limit", limit),
	}
}

// record keeps what is known of r's body o and returns the 413 to answer.
func (t *tooLarge) record(r *http.Request, o *oversize) error {
	size := fmt.Sprintf("%d bytes", o.read)
	if o.atLeast {
		size = "at least " + size
	}
	if o.declared >= 0 {
		size += fmt.Sprintf(" (declared %d)", o.declared)
	}
	d := &store.Delivery{
		Kind: store.KindUnknown, Verdict: store.VerdictTooLarge, Body: o.head, Header: r.Header,
		BodyLength: o.read, BodyLengthAtLeast: o.atLeast, DeclaredLength: max(o.declared, 0),
		Reason: fmt.Sprintf("body of %s over the %d-byte limit; only its first %d bytes are kept, unverified",
			size, t.limit, len(o.head)),
	}
	err := t.writes.write(r.Context(), func(ctx context.Context) error { return t.st.RecordDelivery(ctx, d) })
	switch {
	case err == nil:
		// A warning, not news: HubSpot will not send this contact again,
		// so someone has to raise the limit and have it sent again.
		t.log.Warn("webhook body over the limit answered 413; recorded as too_large", "delivery_id", d.ID,
			"body_bytes", o.read, "at_least", o.atLeast, "declared", o.declared, "limit", t.limit)
	case errors.Is(err, errWritersBusy):
		t.drops.add(time.Now(), dropBusy)
	default:
		t.log.Warn("could not record a webhook body over the limit; it is answered 413 all the same",
			"body_bytes", o.read, "at_least", o.atLeast, "declared", o.declared, "limit", t.limit, "err", err)
	}
	return newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
		fmt.Sprintf("body larger than the %d-byte limit", t.limit), nil)
}

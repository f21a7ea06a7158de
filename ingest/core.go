// Package ingest is what happens to a HubSpot delivery once its signature
// is verified: parse it, route it to CC lists, store the delivery and the
// enrollment in one transaction, and queue the enrollment for import. It
// knows nothing of HTTP: the webhook handler turns its Result into an answer
// with one table (handlers.Status), and the replays of quarantined and
// stored deliveries and `hs2cc simulate --in-process` call it directly, so
// that every path runs the same code.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// Store is what ingest needs from the store; *store.DB is one.
type Store interface {
	Ingest(ctx context.Context, d *store.Delivery, e *store.Enrollment) (store.IngestResult, error)
	RecordDelivery(ctx context.Context, d *store.Delivery) error
	// IngestEvent stores one Webhooks API event as its own delivery, with
	// the property change it applies when change is not nil.
	IngestEvent(ctx context.Context, d *store.Delivery, key string, change *store.PropertyChange) (store.IngestResult, error)
}

// Enqueuer queues an enrollment version for import; *jobs.Enqueuer is one.
type Enqueuer interface {
	EnqueueEnrollment(ctx context.Context, id int64, version int, lists []string) error
}

// Router decides which CC lists an enrollment goes to, and says why (the
// rule that matched), which is stored with the delivery and the version
// for `hs2cc trace`; *routing.Rules is one.
type Router interface {
	Route(e *store.Enrollment) (lists []string, why string, err error)
}

// Config is what ingest reads besides the body.
type Config struct {
	// Fields names the HubSpot properties that hold the email and names.
	Fields hubspot.FieldNames
	// Lists are the CC lists every enrollment goes to, unless Router is
	// set.
	Lists  []string
	Router Router
	Logger *slog.Logger
}

// Core runs a verified delivery through parse, route, store and enqueue.
type Core struct {
	cfg Config
	st  Store
	enq Enqueuer
}

// New builds the core.
func New(cfg Config, st Store, enq Enqueuer) *Core {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Core{cfg: cfg, st: st, enq: enq}
}

// enqueueTimeout bounds the enqueue after the commit; the row is durable by
// then, so giving up early loses nothing.
const enqueueTimeout = 2 * time.Second

// Ingest runs raw, verified as v says, through parse, route, store and
// enqueue, with the delivery dated receivedAt (when it arrived; now when
// zero). v.SignedAt orders a body without HubSpot data times against the
// contact's other deliveries, so that an older one replayed later is stale.
// Whatever was stored is a Result, refusals included (a malformed body, no
// usable email, no route, a field too long to keep), each kept with its
// verdict so that it can be inspected and replayed. The error is for faults
// of ours only (the store failing): an *Error with CodeUnavailable, which
// HubSpot must be asked to retry.
func (c *Core) Ingest(ctx context.Context, raw []byte, v hubspot.Verified, receivedAt time.Time) (Result, error) {
	d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: string(v.Version), Body: raw,
		ReceivedAt: receivedAt.UTC(), SignedAt: v.SignedAt}
	parsed, err := hubspot.ParseWorkflow(raw, c.cfg.Fields)
	switch {
	case errors.Is(err, hubspot.ErrWebhooksAPI):
		return c.events(ctx, raw, v, d.ReceivedAt)
	case errors.Is(err, hubspot.ErrNoEmail):
		d.Verdict, d.Reason = store.VerdictNoEmail, err.Error()
		return c.refuse(ctx, d, CodeNoEmail)
	case errors.Is(err, hubspot.ErrMalformed):
		d.Kind, d.Verdict, d.Reason = store.KindUnknown, store.VerdictMalformed, err.Error()
		return c.refuse(ctx, d, CodeMalformed)
	case err != nil:
		return Result{}, unavailable("could not read the delivery", err)
	}
	e := toEnrollment(parsed, c.cfg.Lists)
	e.Route = configuredLists
	e.SentAt = v.SignedAt
	if c.cfg.Router != nil {
		lists, why, err := c.cfg.Router.Route(e)
		if err != nil {
			// The rules send this contact nowhere: the delivery is kept
			// with the reason, to be replayed once the rules are fixed,
			// and with the email, so that a trace of the contact finds it.
			d.Verdict, d.Reason, d.Email = store.VerdictNoRoute, err.Error(), e.Email
			return c.refuse(ctx, d, CodeNoRoute)
		}
		e.Lists, e.Route = lists, why
	}
	res, err := c.st.Ingest(ctx, d, e)
	var tooLong *store.FieldTooLongError
	switch {
	case errors.As(err, &tooLong):
		// The same body would fail the same way on every retry: it is
		// kept as rejected, with the field, and answered as a refusal.
		d.Verdict, d.Reason = store.VerdictRejected, tooLong.Error()
		return c.refuse(ctx, d, CodeFieldTooLong)
	case err != nil:
		return Result{}, unavailable("could not store the enrollment", err)
	}
	// A pending row is queued even on a repeat: a repeat may be HubSpot's
	// retry of a request whose enqueue failed. The TaskID makes it a no-op
	// when the task exists, so replays of one request make no new task. An
	// enqueue failure is not the caller's fault and the row is durable, so
	// the sweep will queue it.
	if res.Status == store.StatusPending {
		// Bounded, so that a Redis outage slows each answer by at most
		// this much instead of by the client's dial timeouts and retries.
		ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
		err := c.enq.EnqueueEnrollment(ectx, res.EnrollmentID, res.Version, res.Lists)
		cancel()
		if err != nil {
			c.cfg.Logger.Warn("enqueue failed; the sweep will enqueue the stored enrollment",
				"enrollment_id", res.EnrollmentID, "err", err)
		}
	}
	out := Result{Code: CodeAccepted, Verdict: d.Verdict, DeliveryID: d.ID, EnrollmentID: res.EnrollmentID, Version: res.Version}
	switch res.Outcome {
	case store.OutcomeUnchanged:
		out.Code = CodeDuplicate
	case store.OutcomeStale:
		// Answered like a repeat: HubSpot sent nothing wrong, it only sent
		// it late, and there is no new version.
		out.Code = CodeStale
	}
	return out, nil
}

// configuredLists is why an enrollment goes where it goes without a Router.
const configuredLists = "HS2CC_CC_LISTS"

// refuse keeps a delivery that cannot be imported, with its verdict and
// reason; if even that fails, HubSpot must retry.
func (c *Core) refuse(ctx context.Context, d *store.Delivery, code Code) (Result, error) {
	if err := c.st.RecordDelivery(ctx, d); err != nil {
		return Result{}, unavailable("could not store the delivery", err)
	}
	return Result{Code: code, Verdict: d.Verdict, DeliveryID: d.ID, Message: d.Reason}, nil
}

func toEnrollment(p hubspot.Enrollment, lists []string) *store.Enrollment {
	return &store.Enrollment{
		PortalID: p.PortalID, ObjectKey: p.ObjectKey(), Email: p.Email, FirstName: p.FirstName,
		LastName: p.LastName, Country: p.Country, EnrolledAt: p.EnrolledAt, Properties: p.Properties,
		Lists: lists, ContentHash: p.ContentHash(), SourceUpdatedAt: p.SourceUpdatedAt,
	}
}

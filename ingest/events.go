package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// events ingests a verified Webhooks API delivery, a JSON array of events.
// Each event is stored as its own delivery, in its own transaction with
// what it changes, so that each can be inspected and replayed alone. A
// contact.propertyChange of a contact the bridge has changes that
// enrollment and makes a new version to import; every other event is kept
// as unsupported. A body that is no array of events is refused as
// malformed; an event that could not be stored is a fault of ours, and the
// events stored before it are recognised by their key as duplicates when
// HubSpot sends the batch again.
func (c *Core) events(ctx context.Context, raw []byte, v hubspot.Verified, receivedAt time.Time) (Result, error) {
	events, err := hubspot.ParseWebhooksAPI(raw)
	if err != nil {
		if !errors.Is(err, hubspot.ErrMalformed) {
			return Result{}, unavailable("could not read the delivery", err)
		}
		d := &store.Delivery{Kind: store.KindWebhooksAPI, SignatureVersion: string(v.Version), ReceivedAt: receivedAt,
			Verdict: store.VerdictMalformed, Reason: err.Error(), Body: raw, SignedAt: v.SignedAt}
		return c.refuse(ctx, d, CodeMalformed)
	}

	out := Result{Code: CodeEvents, Events: len(events)}
	verdicts := map[string]int{}
	// The newest pending version of each enrollment, in the order first
	// seen: a batch may change one contact several times, and only the
	// last version needs a task.
	pending := map[int64]store.IngestResult{}
	var order []int64
	for _, ev := range events {
		d := &store.Delivery{Kind: store.KindWebhooksAPI, SignatureVersion: string(v.Version), Body: ev.Raw, ReceivedAt: receivedAt,
			SignedAt: v.SignedAt}
		res, err := c.st.IngestEvent(ctx, d, ev.Key(), c.propertyChange(ev, d))
		if err != nil {
			return Result{}, unavailable("could not store the event", err)
		}
		out.Stored++
		out.Verdict, out.DeliveryID = d.Verdict, d.ID
		verdicts[d.Verdict]++
		if res.Outcome == store.OutcomeUpdated {
			out.Updated++
		}
		// A pending row is queued even on a repeat, as for a workflow
		// delivery: the repeat may be HubSpot's retry of a batch whose
		// enqueue failed.
		if res.EnrollmentID != 0 && res.Status == store.StatusPending {
			if _, seen := pending[res.EnrollmentID]; !seen {
				order = append(order, res.EnrollmentID)
			}
			pending[res.EnrollmentID] = res
		}
	}

	// One bound for the whole batch: HubSpot waits only 5 s for this API,
	// and during a Redis outage each enqueue would wait out its own timeout.
	// What is not queued here is durable and pending, so the sweep queues it.
	ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	for i, id := range order {
		res := pending[id]
		if err := c.enq.EnqueueEnrollment(ectx, id, res.Version, res.Lists); err != nil {
			c.cfg.Logger.Warn("enqueue failed; the sweep will enqueue the stored enrollments",
				"enrollment_id", id, "not_queued", len(order)-i, "err", err)
			break
		}
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "webhooks api delivery",
		slog.Int("events", out.Events), slog.Int("updated", out.Updated), slog.Any("verdicts", verdicts))
	return out, nil
}

// propertyChange returns the change an event makes to an enrollment, or nil
// with d's verdict and reason saying why it makes none.
func (c *Core) propertyChange(ev hubspot.Event, d *store.Delivery) *store.PropertyChange {
	var why string
	switch {
	case !ev.IsContactPropertyChange():
		why = fmt.Sprintf("%s events are stored, not applied", cmp.Or(ev.SubscriptionType, "untyped"))
	case ev.ObjectID == "":
		why = "property change without an objectId"
	case ev.PropertyName == "":
		why = "property change without a propertyName"
	case !ev.HasPropertyValue:
		// A value left out (a sensitive property, say) is not a cleared
		// one; applying it as "" would wipe what the contact has.
		why = fmt.Sprintf("property change of %q without a propertyValue", ev.PropertyName)
	default:
		return &store.PropertyChange{
			PortalID:   ev.PortalID,
			ObjectKey:  hubspot.Enrollment{ObjectID: ev.ObjectID}.ObjectKey(),
			Name:       ev.PropertyName,
			OccurredAt: ev.OccurredAt,
			Apply:      c.applyProperty(ev.PropertyName, ev.PropertyValue),
		}
	}
	d.Verdict, d.Reason = store.VerdictUnsupported, why
	return nil
}

// applyProperty sets a property's new value on a stored enrollment the way
// a workflow body with that value would have set it: the field the property
// feeds, the lists the rules give, and the content hash, so that the same
// content hashes alike whichever way it arrived.
func (c *Core) applyProperty(name, value string) func(e *store.Enrollment) error {
	return func(e *store.Enrollment) error {
		// Rows are found by object id, so the key is the id the hash was
		// made with.
		h := hubspot.Enrollment{
			PortalID: e.PortalID, ObjectID: e.ObjectKey, Email: e.Email, FirstName: e.FirstName,
			LastName: e.LastName, Country: e.Country, EnrolledAt: e.EnrolledAt, Properties: e.Properties,
		}
		if err := h.SetProperty(name, value, c.cfg.Fields); err != nil {
			if errors.Is(err, hubspot.ErrNoEmail) {
				return &store.Refusal{Verdict: store.VerdictNoEmail, Reason: err.Error()}
			}
			return err
		}
		e.Email, e.FirstName, e.LastName, e.Country, e.EnrolledAt = h.Email, h.FirstName, h.LastName, h.Country, h.EnrolledAt
		e.Properties, e.ContentHash, e.Lists, e.Route = h.Properties, h.ContentHash(), c.cfg.Lists, configuredLists
		if c.cfg.Router != nil {
			lists, why, err := c.cfg.Router.Route(e)
			if err != nil {
				return &store.Refusal{Verdict: store.VerdictNoRoute, Reason: err.Error()}
			}
			e.Lists, e.Route = lists, why
		}
		return nil
	}
}

package handlers

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// enqueueTimeout bounds the enqueue after the commit; the row is durable
// by then, so giving up early loses nothing.
const enqueueTimeout = 2 * time.Second

// acceptedBody answers a workflow delivery. Duplicate says that no new
// version was made; Stale adds that the delivery was older than the stored
// data, so it changed nothing even if its content differs.
type acceptedBody struct {
	ID        int64 `json:"id"`
	Version   int   `json:"version,omitempty"`
	Duplicate bool  `json:"duplicate,omitempty"`
	Stale     bool  `json:"stale,omitempty"`
}

// handleWebhook receives one HubSpot delivery. The order matters: limit the
// body, read the raw bytes, verify the signature over exactly those bytes,
// parse, store delivery and enrollment in one transaction, enqueue, answer.
// A 2xx is sent only after the commit, and no fault of ours is ever answered
// with a 4xx, since HubSpot would then drop the enrollment for good. A
// request refused for its signature is quarantined before its 401, and one
// refused for its size is recorded before its 413, so that neither is lost
// without a trace.
func handleWebhook(cfg Config, st Store, enq Enqueuer) echo.HandlerFunc {
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	limit := cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	ingest := ingestVerified(cfg, st, enq)
	quarantined := newQuarantine(cfg, st)
	oversized := newTooLarge(cfg, st, limit)
	return func(c echo.Context) error {
		r := c.Request()
		raw, over, err := readBody(r, limit)
		if err != nil {
			return err
		}
		if over != nil {
			return oversized.record(r, over)
		}
		version, err := cfg.Verifier.Verify(hubspot.Request{
			Method: r.Method, URI: signedURI(base, r), Body: raw, Header: r.Header,
		})
		if err != nil {
			if errors.Is(err, hubspot.ErrNoSecret) {
				return unavailable("the webhook secret is not configured", err)
			}
			// HubSpot never retries a 4xx, so the request is kept first;
			// whether that succeeds does not change the answer.
			quarantined.keep(r, raw, version, err)
			return newError(http.StatusUnauthorized, CodeBadSignature, signatureMessage(err), err)
		}
		return ingest(c, raw, version)
	}
}

// ingestVerified is everything after a verified signature: parse, route,
// store, enqueue, answer. It stands alone so that a quarantined request
// replayed later (Ingester) runs exactly the code that a request verified
// on arrival runs.
func ingestVerified(cfg Config, st Store, enq Enqueuer) func(c echo.Context, raw []byte, version hubspot.Version) error {
	return func(c echo.Context, raw []byte, version hubspot.Version) error {
		ctx := c.Request().Context()
		d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: string(version), Body: raw}

		parsed, err := hubspot.ParseWorkflow(raw, cfg.Fields)
		if errors.Is(err, hubspot.ErrWebhooksAPI) {
			return ingestEvents(c, cfg, st, enq, version, raw)
		}
		if err != nil {
			// Keep what cannot be imported, with its reason, so that it can be
			// inspected and replayed; if even that fails, HubSpot must retry.
			status, code := http.StatusBadRequest, CodeMalformed
			d.Verdict, d.Reason = store.VerdictMalformed, err.Error()
			switch {
			case errors.Is(err, hubspot.ErrNoEmail):
				d.Verdict = store.VerdictNoEmail
				status, code = http.StatusUnprocessableEntity, CodeNoEmail
			case errors.Is(err, hubspot.ErrMalformed):
				d.Kind = store.KindUnknown
			default:
				return unavailable("could not read the delivery", err)
			}
			if serr := st.RecordDelivery(ctx, d); serr != nil {
				return unavailable("could not store the delivery", serr)
			}
			return newError(status, code, err.Error(), err)
		}

		e := toStoreEnrollment(parsed, cfg.Lists)
		if cfg.Router != nil {
			lists, err := cfg.Router.Lists(e)
			if err != nil {
				// The rules send this contact nowhere. Keep the delivery
				// with the reason, so that it can be replayed once the
				// rules are fixed.
				d.Verdict, d.Reason = store.VerdictNoRoute, err.Error()
				if serr := st.RecordDelivery(ctx, d); serr != nil {
					return unavailable("could not store the delivery", serr)
				}
				return newError(http.StatusUnprocessableEntity, CodeNoRoute, err.Error(), err)
			}
			e.Lists = lists
		}
		res, err := st.Ingest(ctx, d, e)
		if err != nil {
			return unavailable("could not store the enrollment", err)
		}
		// A pending row is queued even on a repeat: a repeat may be HubSpot's
		// retry of a request whose enqueue failed. The TaskID makes it a no-op
		// when the task exists. An enqueue failure is not the caller's fault
		// and the row is durable, so the sweep will queue it: still a 2xx.
		if res.Status == store.StatusPending {
			// Bounded, so that a Redis outage slows each answer by at most
			// this much instead of by the client's dial timeouts and retries.
			ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
			err := enq.EnqueueEnrollment(ectx, res.EnrollmentID, res.Version, res.Lists)
			cancel()
			if err != nil {
				cfg.Logger.Warn("enqueue failed; the sweep will enqueue the stored enrollment",
					"enrollment_id", res.EnrollmentID, "err", err)
			}
		}
		// A stale delivery is answered like a repeat: HubSpot sent nothing
		// wrong, it only sent it late, and there is no new version.
		if res.Outcome == store.OutcomeUnchanged || res.Outcome == store.OutcomeStale {
			return c.JSON(http.StatusOK, acceptedBody{ID: res.EnrollmentID, Version: res.Version, Duplicate: true,
				Stale: res.Outcome == store.OutcomeStale})
		}
		return c.JSON(http.StatusAccepted, acceptedBody{ID: res.EnrollmentID, Version: res.Version})
	}
}

// signedURI is the URI HubSpot signed for r; see SignedURI.
func signedURI(base string, r *http.Request) string {
	return SignedURI(base, requestScheme(r), r.Host, r.RequestURI)
}

func signatureMessage(err error) string {
	switch {
	case errors.Is(err, hubspot.ErrMissingSignature):
		return "missing HubSpot signature headers"
	case errors.Is(err, hubspot.ErrStaleTimestamp):
		return "request timestamp outside the accepted window"
	case errors.Is(err, hubspot.ErrBadTimestamp):
		return "unreadable request timestamp"
	}
	return "signature does not match"
}

func toStoreEnrollment(p hubspot.Enrollment, lists []string) *store.Enrollment {
	return &store.Enrollment{
		PortalID: p.PortalID, ObjectKey: p.ObjectKey(), Email: p.Email, FirstName: p.FirstName,
		LastName: p.LastName, Country: p.Country, EnrolledAt: p.EnrolledAt, Properties: p.Properties,
		Lists: lists, ContentHash: p.ContentHash(), SourceUpdatedAt: p.SourceUpdatedAt,
	}
}

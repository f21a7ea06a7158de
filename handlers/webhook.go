package handlers

import (
	"cmp"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
)

// acceptedBody answers a workflow delivery. Duplicate says that no new
// version was made; Stale adds that the delivery was older than the stored
// data, so it changed nothing even if its content differs.
type acceptedBody struct {
	ID        int64 `json:"id"`
	Version   int   `json:"version,omitempty"`
	Duplicate bool  `json:"duplicate,omitempty"`
	Stale     bool  `json:"stale,omitempty"`
}

// errNoPublicURL is the logged cause of the 503 a webhook gets while
// Config.PublicURL is empty; serve refuses to start that way.
var errNoPublicURL = errors.New("HS2CC_PUBLIC_URL is not set")

// handleWebhook receives one HubSpot delivery. The order matters: limit the
// body, read the raw bytes, verify the signature over exactly those bytes,
// then hand them to the ingest core (parse, store delivery and enrollment in
// one transaction, enqueue), and answer by the one table of Status. A 2xx
// is sent only after the commit, and no fault of ours is ever answered with
// a 4xx, since HubSpot would then drop the enrollment for good. A request
// refused for its signature is quarantined before its 401, and one refused
// for its size is recorded before its 413, so that neither is lost without
// a trace.
func handleWebhook(cfg Config, st Store, core *ingest.Core) echo.HandlerFunc {
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	limit := cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	quarantined := newQuarantine(cfg, st)
	oversized := newTooLarge(cfg, st, limit)
	memory := newWebhookBodyMemory(cfg)
	return func(c echo.Context) error {
		r := c.Request()
		if base == "" {
			// Without it the signed URI could only come from the Host
			// header, which the caller chooses.
			return unavailable("the public URL is not configured", errNoPublicURL)
		}
		held := memory.reservation(r.Context())
		defer held.release()
		raw, over, err := readBody(c.Response(), r, limit, held)
		if err != nil {
			return err
		}
		if over != nil {
			return oversized.record(r, over)
		}
		verified, err := cfg.Verifier.Verify(hubspot.Request{
			Method: r.Method, URI: signedURI(base, r), Body: raw, Header: r.Header,
		})
		if err != nil {
			if errors.Is(err, hubspot.ErrNoSecret) {
				return unavailable("the webhook secret is not configured", err)
			}
			// HubSpot never retries a 4xx, so the request is kept first;
			// whether that succeeds does not change the answer.
			quarantined.keep(r, raw, verified.Version, err)
			return newError(http.StatusUnauthorized, CodeBadSignature, signatureMessage(err), err)
		}
		res, err := core.Ingest(r.Context(), raw, verified, time.Time{})
		if err != nil {
			var ie *ingest.Error
			if errors.As(err, &ie) {
				return unavailable(ie.Message, ie.Err)
			}
			return unavailable("could not ingest the delivery", err)
		}
		noteOutcome(r.Context(), outcomeOfResult(res))
		return answer(c, res)
	}
}

// Status is the HTTP status the webhook answers for each ingest code: the
// one table, which the replays use too to report what the webhook would
// have answered. HubSpot retries a 5xx for three days and never a 4xx, so
// only a fault of ours is a 5xx; a stale delivery or a Webhooks API batch is
// a 200, since HubSpot sent nothing wrong.
func Status(code ingest.Code) int {
	switch code {
	case ingest.CodeAccepted:
		return http.StatusAccepted
	case ingest.CodeDuplicate, ingest.CodeStale, ingest.CodeEvents:
		return http.StatusOK
	case ingest.CodeMalformed:
		return http.StatusBadRequest
	case ingest.CodeNoEmail, ingest.CodeNoRoute, ingest.CodeFieldTooLong:
		return http.StatusUnprocessableEntity
	}
	return http.StatusServiceUnavailable
}

// answer writes the webhook's answer to res.
func answer(c echo.Context, res ingest.Result) error {
	status := Status(res.Code)
	switch {
	case res.Code == ingest.CodeEvents:
		return c.JSON(status, eventsBody{Events: res.Events, Updated: res.Updated, Stored: res.Stored})
	case status >= 400:
		return newError(status, string(res.Code), res.Message, nil)
	}
	return c.JSON(status, acceptedBody{ID: res.EnrollmentID, Version: res.Version,
		Duplicate: res.Code != ingest.CodeAccepted, Stale: res.Code == ingest.CodeStale})
}

// eventsBody answers a Webhooks API delivery: how many events it held, how
// many of them made a new version of an enrollment, and how many deliveries
// were stored for them (one per event).
type eventsBody struct {
	Events  int `json:"events"`
	Updated int `json:"updated"`
	Stored  int `json:"stored"`
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

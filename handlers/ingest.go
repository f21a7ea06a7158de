package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// Ingester takes a body whose signature has been verified through the same
// code the webhook runs after its own check: parse, route, store, enqueue.
// `hs2cc quarantine replay` uses it, so that a request refused on arrival
// and verified later ends exactly as it would have had it verified at once.
type Ingester struct {
	cfg Config
	st  Store
	enq Enqueuer
	// echo only makes the contexts the webhook code writes its answer to;
	// nothing is served.
	echo *echo.Echo
}

// NewIngester builds an Ingester from the webhook's configuration: Fields,
// Lists, Router and Logger are what it reads.
func NewIngester(cfg Config, st Store, enq Enqueuer) *Ingester {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Ingester{cfg: cfg, st: st, enq: enq, echo: echo.New()}
}

// Ingested is what became of one verified body.
type Ingested struct {
	// Status is what the webhook answered, or would have.
	Status int
	// Verdict is the stored delivery's verdict (store.Verdict*), empty if
	// none was stored.
	Verdict    string
	DeliveryID int64
	// EnrollmentID and Version name the enrollment version stored or found
	// unchanged; zero when the body made none.
	EnrollmentID int64
	Version      int
	// Message says why a 4xx was answered.
	Message string
}

// Ingest runs raw, verified as version, through the webhook's code, with the
// delivery dated receivedAt (now when zero). It returns an error only for
// what the webhook would answer 5xx, a fault on our side such as MySQL
// being down; a body that cannot be imported is an Ingested with its 4xx
// status and stored verdict, as on arrival.
func (in *Ingester) Ingest(ctx context.Context, raw []byte, version hubspot.Version, receivedAt time.Time) (Ingested, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/webhooks/hubspot", http.NoBody)
	if err != nil {
		return Ingested{}, err
	}
	w := &answer{header: http.Header{}}
	seen := &seenStore{Store: in.st, receivedAt: receivedAt.UTC()}
	err = ingestVerified(in.cfg, seen, in.enq)(in.echo.NewContext(req, w), raw, version)
	out := Ingested{Status: w.status, Verdict: seen.verdict, DeliveryID: seen.deliveryID,
		EnrollmentID: seen.res.EnrollmentID, Version: seen.res.Version}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.status >= 500 {
			return out, err
		}
		out.Status, out.Message = ae.status, ae.message
	}
	return out, nil
}

// seenStore passes every call to Store and notes the delivery stored, so
// that Ingest can report it without the webhook code returning it. It dates
// the delivery when it arrived rather than when it was replayed.
type seenStore struct {
	Store
	receivedAt time.Time
	verdict    string
	deliveryID int64
	res        store.IngestResult
}

func (s *seenStore) Ingest(ctx context.Context, d *store.Delivery, e *store.Enrollment) (store.IngestResult, error) {
	s.date(d)
	res, err := s.Store.Ingest(ctx, d, e)
	if err == nil {
		s.verdict, s.deliveryID, s.res = d.Verdict, d.ID, res
	}
	return res, err
}

func (s *seenStore) RecordDelivery(ctx context.Context, d *store.Delivery) error {
	s.date(d)
	err := s.Store.RecordDelivery(ctx, d)
	if err == nil {
		s.verdict, s.deliveryID = d.Verdict, d.ID
	}
	return err
}

func (s *seenStore) date(d *store.Delivery) {
	if d.ReceivedAt.IsZero() && !s.receivedAt.IsZero() {
		d.ReceivedAt = s.receivedAt
	}
}

// answer is the http.ResponseWriter behind an Ingest: it keeps the status
// and drops the body, which Ingested already describes.
type answer struct {
	header http.Header
	status int
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answer) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return len(p), nil
}

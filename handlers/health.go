package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// handleHealth answers while the process runs; it checks nothing else, so
// that a database outage never gets the process restarted.
func handleHealth() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// readyTimeout bounds one round of readiness checks.
const readyTimeout = 3 * time.Second

// Results of a check as /readyz names them.
const (
	checkOK   = "ok"
	checkFail = "fail"
)

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// checkResult is one check's outcome as /ops shows it: the detail of a
// failure (an address, a user name, a list) is for the logged-in ops
// page and the log only.
type checkResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// readiness runs the checks for /readyz and /ops, and logs each failure
// once when it starts or its detail changes, and again when it clears,
// rather than on every probe.
type readiness struct {
	checks []Check
	log    *slog.Logger

	mu      sync.Mutex
	failing map[string]string // the detail last logged for each failing check
}

func newReadiness(checks []Check, log *slog.Logger) *readiness {
	return &readiness{checks: checks, log: log, failing: map[string]string{}}
}

// run runs every check in order.
func (rd *readiness) run(ctx context.Context) []checkResult {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	out := make([]checkResult, 0, len(rd.checks))
	for _, ch := range rd.checks {
		res := checkResult{Name: ch.Name, OK: true}
		if err := ch.Fn(ctx); err != nil {
			res.OK, res.Detail = false, err.Error()
		}
		rd.note(res)
		out = append(out, res)
	}
	return out
}

// note logs a check whose state changed since it was last run.
func (rd *readiness) note(res checkResult) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	last, wasFailing := rd.failing[res.Name]
	switch {
	case !res.OK && (!wasFailing || last != res.Detail):
		rd.failing[res.Name] = res.Detail
		rd.log.Warn("readiness check failed", "check", res.Name, "detail", res.Detail)
	case res.OK && wasFailing:
		delete(rd.failing, res.Name)
		rd.log.Info("readiness check passes again", "check", res.Name)
	}
}

// handleReady runs every check and answers 503 if any fails. It names each
// check with ok or fail and nothing more: /readyz needs no login, and a
// failure's detail can name addresses, users and lists.
func handleReady(rd *readiness) echo.HandlerFunc {
	return func(c echo.Context) error {
		results := rd.run(c.Request().Context())
		body := readyBody{Status: "ok", Checks: make(map[string]string, len(results))}
		status := http.StatusOK
		for _, res := range results {
			if !res.OK {
				body.Checks[res.Name] = checkFail
				body.Status, status = "unavailable", http.StatusServiceUnavailable
				continue
			}
			body.Checks[res.Name] = checkOK
		}
		return c.JSON(status, body)
	}
}

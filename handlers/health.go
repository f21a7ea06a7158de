package handlers

import (
	"context"
	"net/http"
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

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleReady runs every check and answers 503 if any fails, naming it.
func handleReady(checks []Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
		defer cancel()
		body := readyBody{Status: "ok", Checks: make(map[string]string, len(checks))}
		status := http.StatusOK
		for _, ch := range checks {
			if err := ch.Fn(ctx); err != nil {
				body.Checks[ch.Name] = err.Error()
				body.Status, status = "unavailable", http.StatusServiceUnavailable
				continue
			}
			body.Checks[ch.Name] = "ok"
		}
		return c.JSON(status, body)
	}
}

package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// frameAncestors is the one CSP directive every /ops answer carries; the
// pages add theirs to it with addCSP, so that the framing rule is stated
// in one place.
const frameAncestors = "frame-ancestors 'none'"

// opsHeaders forbids framing and content sniffing on everything under /ops,
// Asynqmon's pages and the 401 of a wrong login included: a page of ours in
// a frame on another site could be clicked through by a logged-in admin
// without seeing it. It runs before the login so that every answer has
// the headers.
func opsHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", frameAncestors)
		return next(c)
	}
}

// addCSP adds a page's own directives to the response's
// Content-Security-Policy, before those already set, rather than
// replacing them.
func addCSP(h http.Header, directives string) {
	if old := h.Get("Content-Security-Policy"); old != "" {
		directives += "; " + old
	}
	h.Set("Content-Security-Policy", directives)
}

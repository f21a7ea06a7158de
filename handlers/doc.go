// Package handlers is the HTTP face of hs2cc: the HubSpot webhook, health,
// readiness and metrics, the Constant Contact connection, and the ops pages
// behind authentication. Every route is in
// routes.go; handlers are made by functions that close over their
// dependencies; errors become HTTP statuses in one place (errors.go).
//
// Echo stays inside this package (and cmd), so that a move to Echo v5 touches
// only here.
package handlers

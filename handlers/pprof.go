package handlers

import (
	"net/http"
	// The package's init also registers its handlers on
	// http.DefaultServeMux, but no server of hs2cc serves that mux: every
	// http.Server is given its own handler. Only the exported handlers are
	// used here, behind the ops login.
	"net/http/pprof"

	"github.com/labstack/echo/v4"
)

// pprofProfiles are the runtime's named profiles, each served at
// /debug/pprof/NAME. They are listed one by one rather than caught by a
// wildcard so that the routes say exactly what is exposed.
var pprofProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// registerPprof serves Go's profiles under /debug/pprof to ops admins only.
// Profiles show the program's internals (its command line, stacks, the
// heap), and a CPU profile or trace costs the process work for as long as
// the caller asks, so a viewer, whose login is meant for reading figures, may
// not have them. The caller passes the ops middleware, and leaves the routes
// out when there is none, so that they are never served open.
func registerPprof(e *echo.Echo, opsAuth echo.MiddlewareFunc) {
	// The group's middleware also guards the paths under it that match no
	// route, so a stranger learns nothing there but the login challenge.
	// noStore comes first so that the 401 of a wrong password carries its
	// headers too, and so that no cache keeps a profile.
	g := e.Group("/debug/pprof", noStore, opsAuth, requireAdmin)
	// pprof.Index finds a profile's name by cutting "/debug/pprof/" from the
	// path, and its links are relative, so the index is only correct with
	// the trailing slash. The redirect is relative too, so that it still
	// works behind a proxy that strips a path prefix.
	g.GET("", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "pprof/")
	})
	g.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	g.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	g.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	// pprof tools post the addresses to look up when there are many. The
	// lookup changes nothing, but a browser elsewhere has no business
	// posting here, and crossOrigin refuses that as it does on /ops/queues.
	symbol := echo.WrapHandler(http.HandlerFunc(pprof.Symbol))
	g.GET("/symbol", symbol)
	g.POST("/symbol", symbol, crossOrigin())
	g.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	for _, name := range pprofProfiles {
		g.GET("/"+name, echo.WrapHandler(pprof.Handler(name)))
	}
}

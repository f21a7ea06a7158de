//go:build !nodev

// `hs2cc sandbox` is left out of builds made with -tags nodev, as
// production images are, so that they do not link ccclient/ccsandbox; see
// sandbox_nodev.go.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/sandboxcmd"
)

// runSandbox serves the CC sandbox on its own, for tests and people that run
// serve and work as separate processes.
func runSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	var sf sandboxcmd.Flags
	sf.Register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	log := newLogger(stderr, "text", "info")
	sb, err := sf.New(log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	sf.Banner(stdout, "http://"+ln.Addr().String(), sb)
	return serveListener(ctx, ln, sb, log)
}

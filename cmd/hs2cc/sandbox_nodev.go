//go:build nodev

package main

import (
	"context"
	"errors"
	"io"
)

// runSandbox is left out of builds made with -tags nodev, as production
// images are: a fake Constant Contact has no place in them, and leaving it
// out keeps ccclient/ccsandbox out of their dependencies.
func runSandbox(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return errors.New("sandbox: this binary was built with -tags nodev and has no CC sandbox; run `go run ./cmd/hs2cc sandbox` from the source")
}

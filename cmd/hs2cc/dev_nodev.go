//go:build nodev

package main

import (
	"context"
	"errors"
	"io"
)

// runDev is left out of builds made with -tags nodev, as production images
// are: the embedded MySQL it needs costs every process about 250 ms and
// 60 MB at start, whether it runs dev or not.
func runDev(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return errors.New("dev: this binary was built with -tags nodev and has no embedded MySQL and Redis; run `go run ./cmd/hs2cc dev` from the source")
}

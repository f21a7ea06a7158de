//go:build nodev

package main

import (
	"context"
	"errors"
	"io"
)

// runHubSpotSandbox is left out of builds made with -tags nodev, as
// production images are: a fake HubSpot has no place in them.
func runHubSpotSandbox(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("hubspot-sandbox: this binary was built with -tags nodev and has no HubSpot sandbox; run `go run ./cmd/hs2cc hubspot-sandbox` from the source")
}

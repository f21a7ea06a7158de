//go:build !nodev

package main

import (
	"testing"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/sandboxcmd"
)

// The password dev makes passes the rule serve applies, with room to spare.
func TestDevOpsPassword(t *testing.T) {
	dev := devEnv(func(string) string { return "" }, "127.0.0.1:8080", sandboxcmd.Flags{})
	p := dev("HS2CC_OPS_PASSWORD")
	if len(p) != 32 {
		t.Errorf("dev's password has %d characters, want 32", len(p))
	}
	if err := checkOpsPassword(p); err != nil {
		t.Error(err)
	}
}

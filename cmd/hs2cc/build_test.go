package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBuildDeps lists the packages the production binary links
// (`go list -tags nodev -deps`, as the Dockerfile builds it) and fails if
// the dev stack, the CC sandbox or the embedded servers are among them: the
// embedded MySQL alone costs every process about 60 MB and 250 ms at start,
// and a fake Constant Contact has no place in production. The default
// build must link them all, so that the test cannot pass by listing
// nothing or by misspelling a path.
func TestProductionBuildDeps(t *testing.T) {
	deps := func(t *testing.T, tags ...string) []string {
		t.Helper()
		args := append([]string{"list"}, tags...)
		cmd := exec.Command("go", append(args, "-deps", "./cmd/hs2cc")...)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, stderr)
		}
		return strings.Fields(string(out))
	}
	production, dev := deps(t, "-tags", "nodev"), deps(t)
	// links reports whether list holds pkg or one of its subpackages.
	links := func(list []string, pkg string) bool {
		for _, p := range list {
			if p == pkg || strings.HasPrefix(p, pkg+"/") {
				return true
			}
		}
		return false
	}
	for _, pkg := range []string{
		"github.com/hs2cc/hs2cc/ccclient/ccsandbox",
		"github.com/hs2cc/hs2cc/hubspot/crm/hssandbox",
		"github.com/hs2cc/hs2cc/cmd/hs2cc/sandboxcmd",
		"github.com/hs2cc/hs2cc/cmd/hs2cc/devstack",
		"github.com/dolthub/go-mysql-server",
		"github.com/alicebob/miniredis",
	} {
		t.Run(pkg, func(t *testing.T) {
			if links(production, pkg) {
				t.Errorf("the production build (-tags nodev) links %s", pkg)
			}
			if !links(dev, pkg) {
				t.Errorf("the default build does not link %s: hs2cc dev and hs2cc sandbox need it, or its path is wrong here", pkg)
			}
		})
	}
}

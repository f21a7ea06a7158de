package main

import (
	"fmt"
	"os"

	"github.com/hs2cc/hs2cc/routing"
)

// loadRules reads HS2CC_ROUTES, or makes the one-route rules of
// HS2CC_CC_LISTS when it is unset.
func loadRules(path string, lists []string) (*routing.Rules, error) {
	if path == "" {
		return routing.Default(lists), nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("HS2CC_ROUTES: %w", err)
	}
	rules, err := routing.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("HS2CC_ROUTES %s: %w", path, err)
	}
	return rules, nil
}

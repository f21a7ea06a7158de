package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/jobs"
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

// passing reports a CC error worth retrying in a second: the throttle or
// a 5xx.
func passing(err error) bool {
	var apiErr *ccclient.APIError
	return errors.As(err, &apiErr) && (apiErr.Throttled() || apiErr.Temporary())
}

// listResolver is the part of the CC client that finds and makes lists.
type listResolver interface {
	ContactListByName(ctx context.Context, name string) (*ccclient.ContactList, error)
	CreateContactList(ctx context.Context, name, description string) (*ccclient.ContactList, error)
}

// errMissingList stops `work` from starting when the rules name a CC list
// that does not exist and may not be created.
var errMissingList = errors.New("CC list does not exist")

// checkLists makes sure every list the rules can name exists in CC,
// creating those that are missing when the rules allow it, so that a typo
// in a list name stops start-up instead of failing imports one by one.
// Before CC is connected there is nothing to check against; the first
// import resolves the lists then. It returns the ids it found or made, by
// name, for the worker to use instead of looking them up again.
func checkLists(ctx context.Context, cc listResolver, rules *routing.Rules, create bool, log *slog.Logger) (map[string]string, error) {
	ids := map[string]string{}
	for _, name := range rules.AllLists() {
		l, err := cc.ContactListByName(ctx, name)
		// CC's per-second throttle clears within a second (several workers
		// starting together can meet it) and a 5xx is usually passing.
		for try := 0; try < 10 && passing(err); try++ {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			l, err = cc.ContactListByName(ctx, name)
		}
		switch {
		case err == nil:
			ids[name] = l.ListID
			continue
		case errors.Is(err, jobs.ErrNotConnected):
			log.Warn("CC is not connected yet, so the routing rules' lists were not checked", "lists", len(rules.AllLists()))
			return ids, nil
		case !errors.Is(err, ccclient.ErrNotFound):
			return nil, fmt.Errorf("check CC list %q: %w", name, err)
		case !create:
			return nil, fmt.Errorf("%w: the routing rules name %q; create it in CC or set create_missing_lists: true", errMissingList, name)
		}
		created, err := cc.CreateContactList(ctx, name, "Created by hs2cc for its routing rules")
		if err == nil {
			ids[name] = created.ListID
		} else {
			// A 409 means another worker created it a moment ago; the
			// importer looks its id up when it first needs it.
			var apiErr *ccclient.APIError
			if !errors.As(err, &apiErr) || !apiErr.Conflict() {
				return nil, fmt.Errorf("create CC list %q: %w", name, err)
			}
		}
		log.Info("created a CC list named by the routing rules", "list", name)
	}
	return ids, nil
}

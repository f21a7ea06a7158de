package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestMigrateFillsAGap: a database migrated by a binary that had a later
// migration but not an earlier one (branches landed out of order) is found
// outdated, naming what it lacks, and migrate applies just that.
func TestMigrateFillsAGap(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	// As if 0012 had landed after 0013 and 0015 were applied.
	for _, stmt := range []string{`DROP TABLE quarantine_unshaped`, `DELETE FROM schema_migrations WHERE version = 12`} {
		if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	err := db.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaOutdated) || !strings.Contains(err.Error(), "lacks migrations 12") {
		t.Fatalf("CheckSchema with 12 missing = %v, want ErrSchemaOutdated naming 12", err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil || !slices.Equal(applied, []int{12}) {
		t.Fatalf("migrate applied %v, %v; want [12]", applied, err)
	}
	if err := db.CheckSchema(ctx); err != nil {
		t.Errorf("after filling the gap: %v", err)
	}
	if _, err := db.UnshapedCounts(ctx); err != nil {
		t.Errorf("the gap's table: %v", err)
	}
}

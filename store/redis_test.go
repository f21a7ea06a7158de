package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// TestCacheMarkEpoch: the marker says "new" once for a Redis the bridge has
// not seen, to whichever process asks first, and then to nobody until
// Redis loses its data; every caller learns when the marker was set, the
// same time for all, so that each can tell which loss it has seen. After
// a flush exactly one of many concurrent callers is told, so that the
// waiting enrollments are queued again once, not once per worker.
func TestCacheMarkEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb := redisPair(t)
	a, b := store.NewRedis(ra), store.NewRedis(rb)
	steps := []struct {
		name  string
		cache *store.Redis
		flush bool // FLUSHDB this test's own Redis database first
		want  bool
		// newEpoch: the call sets the marker, at a time between just
		// before and just after it; otherwise it reads the marker the
		// last setter set.
		newEpoch bool
	}{
		{"a fresh Redis is new", a, false, true, true},
		{"the same process again", a, false, false, false},
		{"another process after it", b, false, false, false},
		{"after a flush, the first to ask", b, true, true, true},
		{"after a flush, the other process", a, false, false, false},
		{"after a flush, the first to ask again", b, false, false, false},
	}
	var epoch time.Time
	for _, st := range steps {
		if st.flush {
			if err := ra.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now()
		since, lost, err := st.cache.MarkEpoch(ctx)
		after := time.Now()
		if err != nil {
			t.Fatalf("%s: MarkEpoch: %v", st.name, err)
		}
		if lost != st.want {
			t.Errorf("%s: MarkEpoch lost = %v, want %v", st.name, lost, st.want)
		}
		switch {
		case st.newEpoch && (since.Before(before) || since.After(after)):
			t.Errorf("%s: epoch %s, want the time of this call (%s to %s)", st.name, since, before, after)
		case st.newEpoch && since.Equal(epoch):
			t.Errorf("%s: epoch %s is the one before the flush", st.name, since)
		case !st.newEpoch && !since.Equal(epoch):
			t.Errorf("%s: epoch %s, want the one set by the last setter, %s", st.name, since, epoch)
		}
		if st.newEpoch {
			epoch = since
		}
	}

	if err := rb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		since time.Time
		lost  bool
	}
	results := make([]result, 16)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			since, lost, err := []*store.Redis{a, b}[i%2].MarkEpoch(ctx)
			if err != nil {
				t.Errorf("MarkEpoch: %v", err)
			}
			results[i] = result{since, lost}
		})
	}
	wg.Wait()
	told := 0
	for _, r := range results {
		if r.lost {
			told++
			epoch = r.since
		}
	}
	if told != 1 {
		t.Fatalf("after a flush %d of 16 concurrent callers were told Redis lost its data, want exactly 1", told)
	}
	for i, r := range results {
		if !r.since.Equal(epoch) {
			t.Errorf("caller %d saw the epoch %s, want the setter's %s", i, r.since, epoch)
		}
	}
}

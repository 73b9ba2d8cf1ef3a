package usage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/usage"
)

// store keeps what was flushed and fails while down is set.
type store struct {
	mu     sync.Mutex
	down   bool
	counts map[string]int64
}

func (s *store) AddUsage(_ context.Context, counts []billing.UsageCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("database is down")
	}
	for _, c := range counts {
		s.counts[c.ProjectID+" "+string(c.Environment)+" "+c.Endpoint+" "+c.StatusClass+" "+c.Day] += c.Count
	}
	return nil
}

func (s *store) get(k string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[k]
}

func TestRecorder(t *testing.T) {
	now := time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC)
	st := &store{counts: map[string]int64{}}
	rec := usage.NewRecorder(st, usage.Options{Interval: time.Hour, Now: func() time.Time { return now }})
	ctx := context.Background()
	key := "prj_1 test GET /v1/x 2xx 2026-11-25"

	rec.Record("prj_1", billing.EnvTest, "GET /v1/x", 200)
	rec.Record("prj_1", billing.EnvTest, "GET /v1/x", 201)
	rec.Record("prj_1", billing.EnvTest, "GET /v1/x", 404)
	t.Run("ErrFlushKeepsCounts", func(t *testing.T) {
		st.mu.Lock()
		st.down = true
		st.mu.Unlock()
		if err := rec.Flush(ctx); err == nil {
			t.Fatal("got nil, want the store's error")
		}
		st.mu.Lock()
		st.down = false
		st.mu.Unlock()
		rec.Record("prj_1", billing.EnvTest, "GET /v1/x", 200)
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := st.get(key); got != 3 {
			t.Errorf("got %d, want 3 (two kept from the failed flush, one new)", got)
		}
		if got := st.get("prj_1 test GET /v1/x 4xx 2026-11-25"); got != 1 {
			t.Errorf("4xx: got %d, want 1", got)
		}
	})
	t.Run("FlushedOnce", func(t *testing.T) {
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := st.get(key); got != 3 {
			t.Errorf("an empty flush changed the count: got %d, want 3", got)
		}
	})
	t.Run("CloseFlushes", func(t *testing.T) {
		rec.Record("prj_1", billing.EnvLive, "POST /v1/y", 502)
		if err := rec.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := st.get("prj_1 live POST /v1/y 5xx 2026-11-25"); got != 1 {
			t.Errorf("got %d, want 1 after Close", got)
		}
	})
}

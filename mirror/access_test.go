package mirror

import (
	"fmt"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/testclock"
)

var (
	scopeA = scope{"prj_a", billing.EnvTest}
	scopeB = scope{"prj_b", billing.EnvTest}
	ann    = billing.Who{Email: "ann@example.com"}
	bob    = billing.Who{Email: "bob@example.com"}
	subA   = &billing.Subscription{ID: "sub_a", Status: "active"}
	subB   = &billing.Subscription{ID: "sub_b", Status: "active"}
)

// buildIndex runs the cache's side of an index build, as Mirror.buildIndex
// does, and reports whether a build was started.
func buildIndex(a *answers, sc scope, byWho map[billing.Who]*billing.Subscription) bool {
	for range indexAfterMisses {
		if version, build := a.miss(sc); build {
			a.putIndex(sc, version, byWho, a.now())
			return true
		}
	}
	return false
}

func TestAnswersEntryExpiry(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newAnswers(30*time.Second, clk.Now)
	version, _ := a.miss(scopeA)
	a.put(scopeA, ann, version, subA)
	version, _ = a.miss(scopeA)
	a.put(scopeA, bob, version, nil) // "none" is an answer too
	clk.Advance(29 * time.Second)
	if got, ok := a.get(scopeA, ann); !ok || got != subA {
		t.Errorf("before the expiry: got %v %t, want sub_a", got, ok)
	}
	if got, ok := a.get(scopeA, bob); !ok || got != nil {
		t.Errorf("none before the expiry: got %v %t, want a cached none", got, ok)
	}
	clk.Advance(time.Second)
	if _, ok := a.get(scopeA, ann); ok {
		t.Error("at the expiry: the answer is still served")
	}
	if _, ok := a.get(scopeA, bob); ok {
		t.Error("at the expiry: the cached none is still served")
	}
}

// TestAnswersIndexExpiry shows that an index expires like any answer,
// whether or not a change is announced: without Redis, another instance's
// change is seen within the expiry.
func TestAnswersIndexExpiry(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newAnswers(30*time.Second, clk.Now)
	if !buildIndex(a, scopeA, map[billing.Who]*billing.Subscription{ann: subA}) {
		t.Fatal("no index built after a burst of misses")
	}
	if got, ok := a.get(scopeA, ann); !ok || got != subA {
		t.Fatalf("indexed: got %v %t, want sub_a", got, ok)
	}
	if got, ok := a.get(scopeA, bob); !ok || got != nil {
		t.Fatalf("not in the index: got %v %t, want none from the index", got, ok)
	}
	clk.Advance(29 * time.Second)
	if _, ok := a.get(scopeA, bob); !ok {
		t.Error("before the expiry: the index no longer answers")
	}
	clk.Advance(time.Second)
	if _, ok := a.get(scopeA, ann); ok {
		t.Error("at the expiry: the index still answers")
	}
	// The index was in use: the next miss builds it again at once.
	if _, build := a.miss(scopeA); !build {
		t.Error("after the expiry: the next miss does not rebuild the index")
	}
}

func TestAnswersInvalidate(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newAnswers(time.Hour, clk.Now)
	version, _ := a.miss(scopeA)
	a.put(scopeA, ann, version, subA)
	versionB, _ := a.miss(scopeB)
	a.put(scopeB, ann, versionB, subB)
	a.invalidate(scopeA)
	if _, ok := a.get(scopeA, ann); ok {
		t.Error("after a change: the answer is still served")
	}
	if got, ok := a.get(scopeB, ann); !ok || got != subB {
		t.Errorf("another project: got %v %t, want its answer kept", got, ok)
	}
	// An answer read before a change and stored after it is dropped.
	old, _ := a.miss(scopeA)
	a.invalidate(scopeA)
	a.put(scopeA, ann, old, subA)
	if _, ok := a.get(scopeA, ann); ok {
		t.Error("an answer read before a change is served after it")
	}

	t.Run("Index", func(t *testing.T) {
		a := newAnswers(time.Hour, clk.Now)
		buildIndex(a, scopeA, map[billing.Who]*billing.Subscription{ann: subA})
		a.invalidate(scopeA)
		if _, ok := a.get(scopeA, ann); ok {
			t.Error("after a change: the index still answers")
		}
		// A build that started before a change is not installed.
		var version uint64
		for range indexAfterMisses {
			if v, build := a.miss(scopeA); build {
				version = v
				break
			}
		}
		a.invalidate(scopeA)
		a.putIndex(scopeA, version, map[billing.Who]*billing.Subscription{ann: subA}, clk.Now())
		if _, ok := a.get(scopeA, ann); ok {
			t.Error("an index read before a change answers after it")
		}
	})
}

func TestAnswersBounds(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Run("Scopes", func(t *testing.T) {
		a := newAnswers(time.Hour, clk.Now)
		a.maxScopes = 10
		version, _ := a.miss(scopeA)
		a.put(scopeA, ann, version, subA)
		a.invalidate(scopeA) // scopeA's answers are now older than its version
		for i := range 25 {
			a.invalidate(scope{fmt.Sprintf("prj_%d", i), billing.EnvTest})
			if len(a.scopes) > 10 {
				t.Fatalf("%d states, want at most 10", len(a.scopes))
			}
		}
		// Its state was dropped with the others: the answer from before
		// the change must not come back.
		if _, ok := a.get(scopeA, ann); ok {
			t.Error("an answer from before a change came back after its state was dropped")
		}
	})
	t.Run("Indexed", func(t *testing.T) {
		a := newAnswers(time.Hour, clk.Now)
		a.maxIndexed = 3
		buildIndex(a, scopeA, map[billing.Who]*billing.Subscription{ann: subA, bob: subB})
		buildIndex(a, scopeB, map[billing.Who]*billing.Subscription{ann: subA, bob: subB})
		if a.indexed > 3 {
			t.Errorf("indexed %d customers, want at most 3", a.indexed)
		}
		if _, ok := a.get(scopeB, ann); !ok {
			t.Error("the newest index is not served")
		}
		if _, ok := a.get(scopeA, ann); ok {
			t.Error("the older index is still served beyond the bound")
		}
		if buildIndex(a, scope{"prj_big", billing.EnvTest}, map[billing.Who]*billing.Subscription{
			ann: subA, bob: subB, {Email: "c@x.com"}: subA, {Email: "d@x.com"}: subA}); a.indexed > 3 {
			t.Errorf("an index larger than the bound was installed: %d customers", a.indexed)
		}
	})
}

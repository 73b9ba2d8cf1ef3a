package stripetest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Gate is a stand-in for Stripe in front of another one (next) that holds
// the requests to one path while it is closed, so that a test can act while
// a call to Stripe is in flight. It counts requests by path.
type Gate struct {
	*httptest.Server
	path string
	held chan struct{}
	mu   sync.Mutex
	open chan struct{}
	hits map[string]int
}

// NewGate starts a closed Gate that holds requests to path and passes every
// request, once let through, to next. It is opened and stopped when the
// test ends.
func NewGate(tb TB, path string, next http.Handler) *Gate {
	g := &Gate{path: path, held: make(chan struct{}, 1000), open: make(chan struct{}), hits: map[string]int{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.hits[r.URL.Path]++
		open := g.open
		g.mu.Unlock()
		if r.URL.Path == g.path {
			select {
			case <-open:
			default:
				g.held <- struct{}{}
				select {
				case <-open:
				case <-r.Context().Done():
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	}))
	tb.Cleanup(func() {
		g.Open()
		g.Close()
	})
	return g
}

// Open lets the held requests, and every later one, through.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// WaitHeld waits until a request is held, failing tb after a minute.
func (g *Gate) WaitHeld(tb TB) {
	tb.Helper()
	select {
	case <-g.held:
	case <-time.After(time.Minute):
		tb.Fatalf("no request to %s reached the stand-in within a minute", g.path)
	}
}

// Hits returns how many requests to path arrived.
func (g *Gate) Hits(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hits[path]
}

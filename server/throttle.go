package server

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	billing "github.com/stackfordevs/billing"
)

// Failed-authentication throttle: a client address with maxAuthFailures
// failures in a window of authFailureWindow is refused with a 429 until the
// window ends, whatever it sends.
const (
	maxAuthFailures    = 20
	authFailureWindow  = time.Minute
	maxThrottleEntries = 100_000
)

// failureThrottle counts failed authentications per client address in fixed
// windows. IPv6 addresses count per /64, the block one client usually holds.
// The table holds at most maxThrottleEntries addresses: when it is full,
// addresses whose window ended are dropped, and if it is still full it
// starts again empty, so that memory stays bounded whatever the number of
// addresses.
type failureThrottle struct {
	now func() time.Time

	// active is the number of addresses in m, read without the lock so
	// that the common case (no recent failure) costs one atomic load.
	active atomic.Int64

	mu sync.RWMutex
	m  map[netip.Prefix]*failureWindow
}

type failureWindow struct {
	start    time.Time
	failures int
}

func newFailureThrottle(now func() time.Time) *failureThrottle {
	return &failureThrottle{now: now, m: make(map[netip.Prefix]*failureWindow)}
}

// clientKey returns the address block a client address counts in.
func clientKey(addr string) netip.Prefix {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, 32)
}

// check returns ERATELIMITED, with the time until the window ends, when the
// address (called only when needed) has failed too often.
func (t *failureThrottle) check(addr func() string) error {
	if t.active.Load() == 0 {
		return nil
	}
	k := clientKey(addr())
	t.mu.RLock()
	var start time.Time
	w := t.m[k]
	failed := w != nil && w.failures >= maxAuthFailures
	if failed {
		start = w.start
	}
	t.mu.RUnlock()
	if !failed {
		return nil
	}
	wait := start.Add(authFailureWindow).Sub(t.now())
	if wait <= 0 {
		return nil
	}
	return &billing.Error{
		Code: billing.ERATELIMITED,
		Message: "Too many failed authentication attempts from this address; try again in " +
			strconv.Itoa(int(wait.Seconds()+0.999)) + " seconds.",
		RetryAfter: wait,
	}
}

// fail counts one failed authentication of the address.
func (t *failureThrottle) fail(addr string) {
	k := clientKey(addr)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.m[k]
	if w == nil || now.Sub(w.start) >= authFailureWindow {
		if w == nil && len(t.m) >= maxThrottleEntries {
			t.sweep(now)
		}
		w = &failureWindow{start: now}
		t.m[k] = w
		t.active.Store(int64(len(t.m)))
	}
	w.failures++
}

// sweep drops ended windows, or everything when none has ended. The
// caller holds t.mu.
func (t *failureThrottle) sweep(now time.Time) {
	for k, w := range t.m {
		if now.Sub(w.start) >= authFailureWindow {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxThrottleEntries {
		clear(t.m)
	}
	t.active.Store(int64(len(t.m)))
}

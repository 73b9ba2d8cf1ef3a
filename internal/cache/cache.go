// Package cache holds the service's in-memory caches: maps whose entries
// expire after a fixed time and whose size is bounded, so that what any
// instance holds is never older than the expiry, whether or not it hears
// of changes, and no input can grow it without limit.
package cache

import (
	"sync"
	"time"
)

// TTL is a concurrency-safe map whose entries expire ttl after they were
// put, and which holds at most max entries: when full, expired entries are
// dropped, and if that is not enough, a quarter of the others, chosen at
// random. The clock is injected.
type TTL[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.RWMutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// New returns an empty cache of at most size entries (at least 1). A nil
// now means time.Now.
func New[K comparable, V any](ttl time.Duration, size int, now func() time.Time) *TTL[K, V] {
	if now == nil {
		now = time.Now
	}
	return &TTL[K, V]{ttl: ttl, max: max(size, 1), now: now, entries: make(map[K]entry[V])}
}

// Get returns the value of k while it has not expired.
func (c *TTL[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put stores v under k until the expiry.
func (c *TTL[K, V]) Put(k K, v V) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.makeRoom(now)
	}
	c.entries[k] = entry[V]{value: v, expires: now.Add(c.ttl)}
}

// makeRoom drops the expired entries and, when that frees nothing, a quarter
// of the others (Go's map order is random).
func (c *TTL[K, V]) makeRoom(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) <= c.max-max(c.max/4, 1) {
			return
		}
		delete(c.entries, k)
	}
}

// Add stores v under k when k holds nothing unexpired, and reports whether
// it did: a claim that lasts until the expiry.
func (c *TTL[K, V]) Add(k K, v V) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok && now.Before(e.expires) {
		return false
	}
	if !ok && len(c.entries) >= c.max {
		c.makeRoom(now)
	}
	c.entries[k] = entry[V]{value: v, expires: now.Add(c.ttl)}
	return true
}

// Delete forgets k.
func (c *TTL[K, V]) Delete(k K) {
	c.mu.Lock()
	delete(c.entries, k)
	c.mu.Unlock()
}

// DeleteFunc forgets every key for which drop is true.
func (c *TTL[K, V]) DeleteFunc(drop func(K) bool) {
	c.mu.Lock()
	for k := range c.entries {
		if drop(k) {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// Len returns the number of entries held, expired ones included.
func (c *TTL[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

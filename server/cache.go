package server

import (
	"sync"
	"time"
)

// ttlCache is a small concurrency-safe map whose entries expire. It keeps
// hot-path lookups (credentials, settings) off the database; writers on this
// instance delete the entries they change, and the TTL bounds how long
// another instance may serve a stale entry.
type ttlCache[K comparable, V any] struct {
	mu      sync.RWMutex
	ttl     time.Duration
	now     func() time.Time
	entries map[K]ttlEntry[V]
	max     int
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, now: now, entries: make(map[K]ttlEntry[V]), max: max}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || c.now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		now := c.now()
		for key, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= c.max {
			c.entries = make(map[K]ttlEntry[V])
		}
	}
	c.entries[k] = ttlEntry[V]{value: v, expires: c.now().Add(c.ttl)}
}

func (c *ttlCache[K, V]) delete(k K) {
	c.mu.Lock()
	delete(c.entries, k)
	c.mu.Unlock()
}

package server

import (
	"time"

	"github.com/stackfordevs/billing/internal/cache"
)

// ttlCache keeps hot-path lookups (credentials, settings) off the database:
// a cache.TTL, whose entries expire and whose size is bounded. Writers
// announce what they change on the bus, which drops it here at once; the
// expiry bounds how long another instance may serve a stale entry without
// Redis.
type ttlCache[K comparable, V any] struct {
	c *cache.TTL[K, V]
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{c: cache.New[K, V](ttl, max, now)}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) { return c.c.Get(k) }

func (c *ttlCache[K, V]) put(k K, v V) { c.c.Put(k, v) }

func (c *ttlCache[K, V]) delete(k K) { c.c.Delete(k) }

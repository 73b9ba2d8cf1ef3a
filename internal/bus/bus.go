// Package bus carries cache invalidations between instances of the service
// through Redis pub/sub, so that a change applied by one instance (a webhook,
// a rotated secret, new settings) is seen by every other at once.
package bus

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel is the Redis channel the instances share.
const Channel = "billing:invalidate"

// Redis publishes and receives invalidation keys. Delivery is best effort:
// while Redis is unreachable, messages are lost and the caches' TTLs bound
// how stale another instance can be.
type Redis struct {
	rdb     redis.UniversalClient
	logger  *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	handler atomic.Pointer[func(key string)]
}

// NewRedis starts listening for keys published by any instance, this one
// included; Subscribe says what to do with them.
func NewRedis(rdb redis.UniversalClient, logger *slog.Logger) *Redis {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Redis{rdb: rdb, logger: logger, cancel: cancel, done: make(chan struct{})}
	sub := rdb.Subscribe(ctx, Channel)
	// Wait for Redis to confirm the subscription, so that nothing published
	// after NewRedis returns is missed; a Redis that is down does not hold
	// the start up (the channel subscribes once it answers).
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := sub.Receive(wctx); err != nil {
		logger.Warn("invalidations: Redis did not confirm the subscription yet", "error", err.Error())
	}
	wcancel()
	go func() {
		defer close(b.done)
		defer sub.Close()
		// Channel reconnects by itself after Redis comes back.
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				if fn := b.handler.Load(); fn != nil {
					(*fn)(msg.Payload)
				}
			}
		}
	}()
	return b
}

// Subscribe sets the function called with every key received.
func (b *Redis) Subscribe(fn func(key string)) { b.handler.Store(&fn) }

// Publish sends key to every instance.
func (b *Redis) Publish(ctx context.Context, key string) {
	if err := b.rdb.Publish(ctx, Channel, key).Err(); err != nil {
		b.logger.Warn("invalidation not published; other instances catch up within the cache TTL", "error", err.Error())
	}
}

// Close stops listening.
func (b *Redis) Close() error {
	b.once.Do(b.cancel)
	<-b.done
	return nil
}

package bus

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the prefix of the Redis channel when none is given.
const DefaultPrefix = "billing:"

// RedisOptions configure a Redis remote.
type RedisOptions struct {
	// Prefix starts the name of the channel the instances share
	// (Prefix + "invalidate"), so that several deployments can share one
	// Redis. Empty means DefaultPrefix.
	Prefix string
	// Logger receives the failures to publish; nil logs nothing.
	Logger *slog.Logger
}

// Redis publishes and receives keys through a Redis channel, as JSON.
// Delivery is best effort: while Redis is unreachable, messages are lost and
// the caches' expiry bounds how stale another instance can be.
type Redis struct {
	rdb     redis.UniversalClient
	channel string
	logger  *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	handler atomic.Pointer[func(Key)]
}

// NewRedis starts listening for keys published by any instance, this one
// included; Subscribe says what to do with them.
func NewRedis(rdb redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Redis{rdb: rdb, channel: opts.Prefix + "invalidate", logger: opts.Logger, cancel: cancel, done: make(chan struct{})}
	sub := rdb.Subscribe(ctx, b.channel)
	// Wait for Redis to confirm the subscription, so that nothing published
	// after NewRedis returns is missed; a Redis that is down does not hold
	// the start up (the channel subscribes once it answers).
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := sub.Receive(wctx); err != nil {
		b.logger.Warn("invalidations: Redis did not confirm the subscription yet", "error", err.Error())
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
				var k Key
				if err := json.Unmarshal([]byte(msg.Payload), &k); err != nil || k.Kind == "" {
					continue // not one of ours
				}
				if fn := b.handler.Load(); fn != nil {
					(*fn)(k)
				}
			}
		}
	}()
	return b
}

// Channel returns the name of the Redis channel.
func (b *Redis) Channel() string { return b.channel }

// Subscribe sets the function called with every key received.
func (b *Redis) Subscribe(fn func(Key)) { b.handler.Store(&fn) }

// Publish sends k to every instance.
func (b *Redis) Publish(ctx context.Context, k Key) {
	msg, err := json.Marshal(k)
	if err == nil {
		err = b.rdb.Publish(ctx, b.channel, msg).Err()
	}
	if err != nil {
		b.logger.Warn("invalidation not published; other instances catch up within the cache TTL", "error", err.Error())
	}
}

// Close stops listening.
func (b *Redis) Close() error {
	b.once.Do(b.cancel)
	<-b.done
	return nil
}

// Package ratelimit decides whether a call fits in its hourly budget: in
// process by default, or shared by every instance through Redis.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Decision is the answer for one call.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int
	// ResetAfter is how long until the whole budget is available again.
	ResetAfter time.Duration
	// RetryAfter, when not allowed, is how long until one call fits.
	RetryAfter time.Duration
}

// Limiter decides for a key with a budget of perHour calls per hour
// (a GCRA / token bucket with the whole hour's budget as burst).
type Limiter interface {
	Allow(ctx context.Context, key string, perHour int) (Decision, error)
}

// Local is an in-process limiter.
type Local struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*rate.Limiter
}

// NewLocal returns an in-process limiter; now may be nil for time.Now.
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, m: make(map[string]*rate.Limiter)}
}

// Allow implements Limiter. It never fails.
func (l *Local) Allow(_ context.Context, key string, perHour int) (Decision, error) {
	every := rate.Limit(float64(perHour) / 3600)
	l.mu.Lock()
	lim, ok := l.m[key]
	if !ok || lim.Burst() != perHour {
		lim = rate.NewLimiter(every, perHour)
		l.m[key] = lim
	}
	l.mu.Unlock()
	now := l.now()
	allowed := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	d := Decision{Allowed: allowed, Limit: perHour, Remaining: int(math.Max(0, math.Floor(tokens)))}
	d.ResetAfter = secondsFor(float64(perHour)-tokens, float64(every))
	if !allowed {
		d.RetryAfter = secondsFor(1-tokens, float64(every))
	}
	return d, nil
}

func secondsFor(tokens, perSecond float64) time.Duration {
	if tokens <= 0 || perSecond <= 0 {
		return 0
	}
	return time.Duration(tokens / perSecond * float64(time.Second))
}

// Redis is a limiter shared by every instance through Redis, with the GCRA
// of github.com/go-redis/redis_rate. When Redis fails it answers from an
// in-process limiter (the call is served), reports the error, and stops
// asking Redis for a second so that a dead server costs nothing per call.
type Redis struct {
	limiter  *redis_rate.Limiter
	fallback *Local
	logger   *slog.Logger
	now      func() time.Time
	downTill atomic.Int64 // unix nanos
	// Failures counts calls answered by the fallback.
	Failures atomic.Int64
	OnError  func()
}

// NewRedis returns a limiter on the Redis client.
func NewRedis(rdb redis.UniversalClient, logger *slog.Logger) *Redis {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{limiter: redis_rate.NewLimiter(rdb), fallback: NewLocal(nil), logger: logger, now: time.Now}
}

// NewRedisClient returns a go-redis client for url with timeouts short
// enough that a slow or dead Redis does not hold requests up.
func NewRedisClient(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout = 250 * time.Millisecond
	opts.ReadTimeout = 250 * time.Millisecond
	opts.WriteTimeout = 250 * time.Millisecond
	opts.MaxRetries = 1
	return redis.NewClient(opts), nil
}

// Allow implements Limiter. The error, when not nil, says Redis failed; the
// decision is then the fallback's.
func (r *Redis) Allow(ctx context.Context, key string, perHour int) (Decision, error) {
	if r.now().UnixNano() < r.downTill.Load() {
		d, _ := r.fallback.Allow(ctx, key, perHour)
		return d, errRedisDown
	}
	res, err := r.limiter.Allow(ctx, key, redis_rate.Limit{Rate: perHour, Burst: perHour, Period: time.Hour})
	if err != nil {
		r.downTill.Store(r.now().Add(time.Second).UnixNano())
		r.Failures.Add(1)
		r.logger.Warn("rate limiter: Redis unreachable, limiting in process", "error", err.Error())
		if r.OnError != nil {
			r.OnError()
		}
		d, _ := r.fallback.Allow(ctx, key, perHour)
		return d, err
	}
	return Decision{
		Allowed:    res.Allowed > 0,
		Limit:      perHour,
		Remaining:  res.Remaining,
		ResetAfter: res.ResetAfter,
		RetryAfter: max(res.RetryAfter, 0),
	}, nil
}

type redisDown struct{}

func (redisDown) Error() string { return "rate limiter: Redis marked unreachable" }

var errRedisDown error = redisDown{}

// Package usage counts API calls in memory and writes them to the store in
// batches, so that no request waits on a database write.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	billing "github.com/stackfordevs/billing"
)

// Store receives the counts; AddUsage adds them to what is stored.
type Store interface {
	AddUsage(ctx context.Context, counts []billing.UsageCount) error
}

type key struct {
	project, env, endpoint, class, day string
}

// Recorder buffers counts and flushes them every interval and on Close.
type Recorder struct {
	store    Store
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu        sync.Mutex
	counts    map[key]int64
	lastFlush time.Time

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Options tune a Recorder.
type Options struct {
	Interval time.Duration // default 5s
	Now      func() time.Time
	Logger   *slog.Logger
}

// NewRecorder starts a Recorder that flushes in the background until Close.
func NewRecorder(st Store, opts Options) *Recorder {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{
		store: st, interval: opts.Interval, now: opts.Now, logger: opts.Logger,
		counts: make(map[key]int64), lastFlush: opts.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go r.loop()
	return r
}

// Record counts one call.
func (r *Recorder) Record(projectID string, env billing.Environment, endpoint string, status int) {
	k := key{projectID, string(env), endpoint, class(status), r.now().UTC().Format(time.DateOnly)}
	r.mu.Lock()
	r.counts[k]++
	r.mu.Unlock()
}

func class(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	}
	return "2xx"
}

// Lag returns how long ago the last successful flush was.
func (r *Recorder) Lag() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now().Sub(r.lastFlush)
}

// Flush writes the buffered counts. On failure they are kept and retried
// at the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	pending := r.counts
	r.counts = make(map[key]int64, len(pending))
	r.mu.Unlock()
	if len(pending) == 0 {
		r.mu.Lock()
		r.lastFlush = r.now()
		r.mu.Unlock()
		return nil
	}
	batch := make([]billing.UsageCount, 0, len(pending))
	for k, n := range pending {
		batch = append(batch, billing.UsageCount{
			ProjectID: k.project, Environment: billing.Environment(k.env), Endpoint: k.endpoint,
			StatusClass: k.class, Day: k.day, Count: n,
		})
	}
	err := r.store.AddUsage(ctx, batch)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		for k, n := range pending {
			r.counts[k] += n
		}
		return err
	}
	r.lastFlush = r.now()
	return nil
}

func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := r.Flush(ctx); err != nil {
				r.logger.Warn("usage flush failed; will retry", "error", err.Error())
			}
			cancel()
		}
	}
}

// Close stops the background flushing and flushes what is left.
func (r *Recorder) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return r.Flush(ctx)
}

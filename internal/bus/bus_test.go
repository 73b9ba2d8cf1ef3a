package bus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
)

// recorder collects the keys a subscriber receives.
type recorder struct {
	mu   sync.Mutex
	keys []bus.Key
}

func (r *recorder) add(k bus.Key) {
	r.mu.Lock()
	r.keys = append(r.keys, k)
	r.mu.Unlock()
}

func (r *recorder) got() []bus.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys)
}

// wait waits until the recorder has n keys.
func (r *recorder) wait(t *testing.T, n int) []bus.Key {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %d keys", r.got(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r.got()
}

func TestLocal(t *testing.T) {
	b := bus.New(nil)
	var first, second recorder
	b.Subscribe(first.add)
	b.Subscribe(second.add)
	keys := []bus.Key{bus.MirrorKey("prj_1", billing.EnvTest), bus.ProjectKey("prj_1", "pk_1"),
		bus.StripeSettingsKey("prj_1", billing.EnvLive), bus.AuthSettingsKey("prj_1")}
	b.Publish(context.Background(), keys...)
	// Delivered at once, before Publish returns, to every subscriber.
	if !slices.Equal(first.got(), keys) || !slices.Equal(second.got(), keys) {
		t.Errorf("got %v and %v, want %v", first.got(), second.got(), keys)
	}
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("BILLING_TEST_REDIS_URL")
	if u == "" {
		t.Skip("BILLING_TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("BILLING_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at BILLING_TEST_REDIS_URL is unreachable: %v", err)
	}
	return rdb
}

// TestRedis runs two instances' buses on one Redis: a key published on one
// reaches the other's subscribers, typed; a bus with another prefix hears
// nothing of them.
func TestRedis(t *testing.T) {
	rdb := redisClient(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "billing-test-" + hex.EncodeToString(b) + ":"
	newBus := func(prefix string) (*bus.Bus, *recorder) {
		r := bus.NewRedis(rdb, bus.RedisOptions{Prefix: prefix})
		t.Cleanup(func() { r.Close() })
		if r.Channel() != prefix+"invalidate" {
			t.Errorf("channel: got %q, want %q", r.Channel(), prefix+"invalidate")
		}
		bb := bus.New(r)
		rec := &recorder{}
		bb.Subscribe(rec.add)
		return bb, rec
	}
	one, fromOne := newBus(prefix)
	_, fromTwo := newBus(prefix)
	_, otherDeployment := newBus(prefix + "other:")

	k := bus.MirrorKey("prj_redis", billing.EnvLive)
	one.Publish(context.Background(), k)
	if got := fromTwo.wait(t, 1); got[0] != k {
		t.Errorf("the other instance got %+v, want %+v", got[0], k)
	}
	// The publisher hears it at once and again from Redis.
	if got := fromOne.wait(t, 2); got[0] != k || got[1] != k {
		t.Errorf("the publishing instance got %+v", got)
	}
	// A message that is not a key is ignored.
	if err := rdb.Publish(context.Background(), prefix+"invalidate", "mirror|prj_x|test").Err(); err != nil {
		t.Fatal(err)
	}
	k2 := bus.ProjectKey("prj_redis", "pk_redis")
	one.Publish(context.Background(), k2)
	if got := fromTwo.wait(t, 2); got[1] != k2 {
		t.Errorf("after a stray message: got %+v, want %+v", got, k2)
	}
	if got := otherDeployment.got(); len(got) != 0 {
		t.Errorf("another prefix got %+v, want nothing", got)
	}
}

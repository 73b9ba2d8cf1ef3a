package server_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/ratelimit"
)

// tcpGate forwards a loopback port to a real server and can be cut and
// restored, to take Redis away from the service and give it back.
type tcpGate struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newTCPGate(t *testing.T, target string) *tcpGate {
	g := &tcpGate{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.cut)
	return g
}

func (g *tcpGate) serve(ln net.Listener) {
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection: Redis is gone.
func (g *tcpGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// restore listens again on the same port: Redis is back.
func (g *tcpGate) restore(t *testing.T) {
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.serve(ln)
}

// TestRateLimitRecoversWhenRedisReturns takes Redis away while calls go on
// (they are served) and gives it back: the shared limit is used again
// without a restart.
func TestRateLimitRecoversWhenRedisReturns(t *testing.T) {
	u, _ := url.Parse(redisURL(t))
	gate := newTCPGate(t, u.Host)
	gated := *u
	gated.Host = gate.addr
	rdb, err := ratelimit.NewRedisClient(gated.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	rl := ratelimit.NewRedis(rdb, nil)
	e := newTestEnv(t, storeFor(t), func(c *serverConfig) { c.Limiter = rl })
	p := e.newProject(t, "")
	call := func() string {
		t.Helper()
		resp, b := createCustomer(t, e, p, "test")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
		}
		return resp.Header.Get("X-RateLimit-Remaining")
	}
	call()
	if n := rl.Failures.Load(); n != 0 {
		t.Fatalf("got %d failures with Redis up", n)
	}
	// The project's budget lives in Redis under this key; a direct client
	// (not through the gate) watches it.
	key := "rate:" + p.ProjectID + ":test:create"
	direct, _ := ratelimit.NewRedisClient(u.String())
	t.Cleanup(func() { direct.Close() })
	ctx := context.Background()
	if n, _ := direct.Exists(ctx, key).Result(); n != 1 {
		t.Fatalf("Redis key %s missing while Redis is up", key)
	}
	gate.cut()
	direct.Del(ctx, key)
	call()
	call()
	if rl.Failures.Load() == 0 {
		t.Fatal("no failure counted with Redis down")
	}
	if n, _ := direct.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("the key came back while Redis was unreachable")
	}
	gate.restore(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		call()
		if n, _ := direct.Exists(ctx, key).Result(); n == 1 {
			return // the limiter writes to Redis again
		}
		if time.Now().After(deadline) {
			t.Fatal("the limiter did not use Redis again after it came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

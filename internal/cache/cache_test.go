package cache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/cache"
	"github.com/stackfordevs/billing/internal/testclock"
)

func TestTTLExpiry(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	c := cache.New[string, int](30*time.Second, 10, clk.Now)
	c.Put("a", 1)
	clk.Advance(29 * time.Second)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Errorf("before the expiry: got %d %t, want 1", v, ok)
	}
	c.Put("b", 2)
	clk.Advance(time.Second)
	if _, ok := c.Get("a"); ok {
		t.Error("at the expiry: a still answers")
	}
	if v, ok := c.Get("b"); !ok || v != 2 {
		t.Errorf("b: got %d %t, want 2 (put later)", v, ok)
	}
	c.Put("a", 3) // a new put starts a new expiry
	clk.Advance(29 * time.Second)
	if v, ok := c.Get("a"); !ok || v != 3 {
		t.Errorf("after a new put: got %d %t, want 3", v, ok)
	}
	c.Delete("a")
	if _, ok := c.Get("a"); ok {
		t.Error("after Delete: a still answers")
	}
}

func TestTTLBound(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	const size = 100
	c := cache.New[int, int](time.Minute, size, clk.Now)
	for i := range 10 * size {
		c.Put(i, i)
		if c.Len() > size {
			t.Fatalf("after %d puts: %d entries, want at most %d", i+1, c.Len(), size)
		}
	}
	if v, ok := c.Get(10*size - 1); !ok || v != 10*size-1 {
		t.Errorf("the latest entry: got %d %t, want it kept", v, ok)
	}

	t.Run("ExpiredGoFirst", func(t *testing.T) {
		c := cache.New[int, int](time.Minute, size, clk.Now)
		for i := range size / 2 {
			c.Put(i, i)
		}
		clk.Advance(time.Minute)
		for i := size / 2; i < size; i++ {
			c.Put(i, i)
		}
		c.Put(size, size) // full: the expired half makes room
		for i := size / 2; i <= size; i++ {
			if _, ok := c.Get(i); !ok {
				t.Errorf("%d: dropped while expired entries were there", i)
			}
		}
		if c.Len() != size/2+1 {
			t.Errorf("len: got %d, want %d", c.Len(), size/2+1)
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		c := cache.New[int, int](time.Minute, 2, clk.Now)
		c.Put(1, 1)
		c.Put(2, 2)
		c.Put(2, 3) // not a new key: nothing is dropped
		if _, ok := c.Get(1); !ok || c.Len() != 2 {
			t.Errorf("got len %d, want both kept", c.Len())
		}
	})
}

func TestTTLAdd(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	c := cache.New[string, int](5*time.Minute, 10, clk.Now)
	if !c.Add("sub_1", 1) {
		t.Fatal("first claim refused")
	}
	clk.Advance(4 * time.Minute)
	if c.Add("sub_1", 2) {
		t.Error("second claim within the expiry granted")
	}
	clk.Advance(time.Minute)
	if !c.Add("sub_1", 3) {
		t.Error("claim after the expiry refused")
	}
	if v, _ := c.Get("sub_1"); v != 3 {
		t.Errorf("got %d, want 3", v)
	}
}

func TestTTLDeleteFunc(t *testing.T) {
	c := cache.New[string, int](time.Minute, 10, nil)
	for i := range 6 {
		c.Put(fmt.Sprintf("k%d", i), i)
	}
	c.DeleteFunc(func(k string) bool { return k < "k3" })
	for i := range 6 {
		_, ok := c.Get(fmt.Sprintf("k%d", i))
		if ok != (i >= 3) {
			t.Errorf("k%d: present %t, want %t", i, ok, i >= 3)
		}
	}
}

func TestTTLConcurrent(t *testing.T) {
	c := cache.New[int, int](time.Minute, 50, nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				c.Put(w*1000+i, i)
				c.Get(i)
				if i%100 == 0 {
					c.Delete(i)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 50 {
		t.Errorf("len: got %d, want at most 50", c.Len())
	}
}

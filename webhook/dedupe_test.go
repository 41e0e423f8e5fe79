package webhook

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is shared by the test and the server's handler goroutines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDeliveries(t *testing.T) {
	t.Run("reserve, commit, duplicate", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1e9, 0)}
		d := newDeliveries(10, time.Hour, clk.now)
		if !d.reserve("a") {
			t.Fatal("first reserve refused")
		}
		if d.reserve("a") {
			t.Error("a delivery being handled was reserved twice")
		}
		d.commit("a")
		if d.reserve("a") {
			t.Error("accepted delivery reserved again")
		}
	})
	t.Run("a released delivery can come again", func(t *testing.T) {
		d := newDeliveries(10, time.Hour, time.Now)
		d.reserve("a")
		d.release("a")
		if !d.reserve("a") {
			t.Error("released delivery refused")
		}
		if d.len() != 0 {
			t.Errorf("remembered %d, want 0 (reservations are not remembered)", d.len())
		}
	})
	t.Run("bounded by size, oldest first", func(t *testing.T) {
		d := newDeliveries(3, time.Hour, time.Now)
		for i := range 5 {
			id := fmt.Sprint(i)
			d.reserve(id)
			d.commit(id)
		}
		if d.len() != 3 {
			t.Fatalf("remembered %d, want 3", d.len())
		}
		for id, dup := range map[string]bool{"0": false, "1": false, "2": true, "3": true, "4": true} {
			if got := !d.reserve(id); got != dup {
				t.Errorf("%s duplicate = %v, want %v", id, got, dup)
			}
		}
	})
	t.Run("bounded by age", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1e9, 0)}
		d := newDeliveries(100, time.Hour, clk.now)
		d.reserve("old")
		d.commit("old")
		clk.advance(30 * time.Minute)
		d.reserve("new")
		d.commit("new")
		clk.advance(30*time.Minute - time.Nanosecond)
		if d.reserve("old") {
			t.Fatal("forgot an ID before its TTL")
		}
		clk.advance(time.Nanosecond)
		if !d.reserve("old") {
			t.Error("an ID older than the TTL is still a duplicate")
		}
		if d.len() != 1 {
			t.Errorf("remembered %d, want 1 (only new)", d.len())
		}
		if d.reserve("new") {
			t.Error("new forgotten early")
		}
	})
}

// TestDedupeOptions: the server's memory of delivery IDs uses the injected
// clock and the configured bounds.
func TestDedupeOptions(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	env := startTestServer(t, func(o *Options) {
		o.Now = clk.now
		o.DedupeTTL = time.Minute
		o.DedupeSize = 2
	})
	body := tartyJob(t, "queued", 1)
	send := func(id string) string {
		return env.send(t, delivery{event: "workflow_job", id: id, body: body}).result
	}
	send("a")
	if got := send("a"); got != "duplicate" {
		t.Fatalf("redelivery = %q", got)
	}
	clk.advance(time.Minute)
	if got := send("a"); got != "accepted" {
		t.Errorf("after the TTL = %q, want accepted", got)
	}
	send("b")
	send("c") // evicts a
	if got := send("a"); got != "accepted" {
		t.Errorf("after eviction = %q, want accepted", got)
	}
	for len(env.events) > 0 {
		<-env.events
	}
}

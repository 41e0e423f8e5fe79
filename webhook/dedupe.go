package webhook

import (
	"container/list"
	"sync"
	"time"
)

// deliveries remembers the X-GitHub-Delivery IDs of accepted deliveries so a
// redelivery (GitHub keeps the ID) has no second effect. Memory is bounded two
// ways: at most max IDs, each forgotten ttl after it was recorded. IDs are kept
// in insertion order, so the oldest is always at the front and both bounds evict
// from there.
//
// A delivery being handled is reserved (inflight) rather than recorded: it only
// becomes a duplicate once it was accepted, so a delivery answered 503 can be
// redelivered and take effect then.
type deliveries struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	seen     map[string]*list.Element // value: seenID
	order    *list.List               // front = oldest
	inflight map[string]struct{}
}

type seenID struct {
	id string
	at time.Time
}

func newDeliveries(max int, ttl time.Duration, now func() time.Time) *deliveries {
	return &deliveries{
		max:      max,
		ttl:      ttl,
		now:      now,
		seen:     make(map[string]*list.Element),
		order:    list.New(),
		inflight: make(map[string]struct{}),
	}
}

// reserve claims id for one delivery. It returns false when id was already
// accepted (within ttl) or is being handled right now by another request.
func (d *deliveries) reserve(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(d.now())
	if _, ok := d.seen[id]; ok {
		return false
	}
	if _, ok := d.inflight[id]; ok {
		return false
	}
	d.inflight[id] = struct{}{}
	return true
}

// commit records a reserved id as accepted.
func (d *deliveries) commit(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inflight, id)
	now := d.now()
	d.expireLocked(now)
	if _, ok := d.seen[id]; ok {
		return
	}
	d.seen[id] = d.order.PushBack(seenID{id: id, at: now})
	for d.order.Len() > d.max {
		d.removeLocked(d.order.Front())
	}
}

// release forgets a reservation whose delivery was not accepted.
func (d *deliveries) release(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inflight, id)
}

// len returns the number of remembered IDs (for tests).
func (d *deliveries) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.order.Len()
}

func (d *deliveries) expireLocked(now time.Time) {
	for e := d.order.Front(); e != nil; e = d.order.Front() {
		if now.Sub(e.Value.(seenID).at) < d.ttl {
			return
		}
		d.removeLocked(e)
	}
}

func (d *deliveries) removeLocked(e *list.Element) {
	delete(d.seen, e.Value.(seenID).id)
	d.order.Remove(e)
}

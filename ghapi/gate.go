package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// writeGap is the least time between two writes (JIT registrations, runner
// removals): GitHub's advice for staying clear of secondary rate limits,
// where every mutating request costs five points.
const writeGap = time.Second

// writeGate serialises GitHub writes: one at a time, each starting at least
// gap after the previous one started. A writer waiting its turn gives up
// when its context ends.
type writeGate struct {
	turn  chan struct{} // holds one token: the right to write
	gap   time.Duration
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	last  time.Time // guarded by holding the token
}

func newWriteGate(gap time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) *writeGate {
	g := &writeGate{turn: make(chan struct{}, 1), gap: gap, now: now, sleep: sleep}
	g.turn <- struct{}{}
	return g
}

// do runs write when its turn comes and the gap since the previous write has
// passed, and returns write's error.
func (g *writeGate) do(ctx context.Context, write func() error) error {
	select {
	case <-g.turn:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { g.turn <- struct{}{} }()
	if !g.last.IsZero() {
		if d := g.last.Add(g.gap).Sub(g.now()); d > 0 {
			if err := g.sleep(ctx, d); err != nil {
				return err
			}
		}
	}
	g.last = g.now()
	return write()
}

// write runs call as a GitHub write: refused at once while a secondary rate
// limit's wait lasts, else in its turn of the write gate, where the limit is
// checked again (one may have been hit while this write waited). call makes
// the request and keeps its answer; write's error is only the refusal or the
// end of ctx while waiting, named after op.
func (c *Client) write(ctx context.Context, op string, call func()) error {
	if err := c.blocked(op); err != nil {
		return err
	}
	err := c.writes.do(ctx, func() error {
		if err := c.blocked(op); err != nil {
			return err
		}
		call()
		return nil
	})
	if err == nil {
		return nil
	}
	var rle *RateLimitError
	if errors.As(err, &rle) {
		return err
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noteSecondary remembers a secondary rate limit so that no request leaves
// before its wait is over (go-github does so for the secondary limits it
// recognises, not for the 429s and URL-less 403s this package recognises).
func (c *Client) noteSecondary(err error) {
	rle, ok := err.(*RateLimitError)
	if !ok || !rle.Secondary || rle.local {
		return
	}
	until := c.now().Add(rle.Wait)
	c.mu.Lock()
	if until.After(c.secondaryUntil) {
		c.secondaryUntil, c.secondaryStatus = until, rle.StatusCode
	}
	c.mu.Unlock()
}

// blocked returns a RateLimitError, without any request, while a secondary
// rate limit's wait lasts.
func (c *Client) blocked(op string) error {
	c.mu.Lock()
	until, status := c.secondaryUntil, c.secondaryStatus
	c.mu.Unlock()
	now := c.now()
	if !now.Before(until) {
		return nil
	}
	if status == 0 {
		status = http.StatusTooManyRequests
	}
	return &RateLimitError{
		Op: op, StatusCode: status, Secondary: true, Wait: clampWait(until.Sub(now)),
		Message: "request not sent: waiting out a secondary rate limit", local: true,
	}
}

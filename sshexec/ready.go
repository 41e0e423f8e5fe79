package sshexec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// WaitReady logs in to the guest repeatedly, with exponential backoff, until
// one login succeeds, ConnectTimeout passes or ctx ends. A changed host key
// stops the retries at once. Authentication failures are retried: a macOS
// guest can refuse logins for a moment while its directory services start.
// On failure the last attempt's error is wrapped.
func (c *Client) WaitReady(ctx context.Context, image, host string) error {
	if err := checkTarget(image, host); err != nil {
		return err
	}
	begin := time.Now()
	deadline := begin.Add(c.opts.ConnectTimeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // the deadline above bounds the retries

	var last error
	attempts := 0
	op := func() error {
		attempts++
		timeout := min(c.opts.attemptTimeout(), time.Until(deadline))
		err := c.t.login(wctx, image, host, timeout)
		if err == nil {
			return nil
		}
		if last != nil && wctx.Err() != nil {
			// This attempt was cut short by the deadline: the previous
			// error says more about why the guest is not ready.
			return err
		}
		last = err
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return backoff.Permanent(err)
		}
		c.log.Debug().Err(err).Str("image", image).Str("host", host).Int("attempt", attempts).Msg("ssh not ready yet")
		return err
	}
	err := backoff.Retry(op, backoff.WithContext(b, wctx))
	if err == nil {
		c.log.Debug().Str("image", image).Str("host", host).Int("attempts", attempts).
			Dur("took", time.Since(begin)).Msg("ssh ready")
		return nil
	}
	target := fmt.Sprintf("ssh %s@%s:%d", c.opts.User, host, c.opts.Port)
	if last == nil {
		last = err
	}
	var hk *HostKeyError
	switch {
	case errors.As(last, &hk):
		return fmt.Errorf("%s: %w", target, last)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: not ready: %w (last attempt: %w)", target, ctx.Err(), last)
	default:
		return fmt.Errorf("%s: not ready after %s (%d attempts): %w",
			target, time.Since(begin).Round(time.Millisecond), attempts, last)
	}
}

package ghapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/ghapi/fakegithub"
)

var requestIDRe = regexp.MustCompile(`\(request [0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F:]+\)$`)

func TestRateLimitFormsBecomeOneError(t *testing.T) {
	tests := []struct {
		name          string
		fault         func(now time.Time) fakegithub.Fault
		exhaust       bool // spend the fake's real budget instead of scripting
		wantStatus    int
		wantSecondary bool
		wantWait      func(now, windowReset time.Time) time.Duration
	}{
		// A 429 with budget left is a secondary limit (it used to be typed as
		// the primary one).
		{"429 with Retry-After", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.TooManyRequests, RetryAfter: 30 * time.Second}
		}, false, 429, true, func(time.Time, time.Time) time.Duration { return 30 * time.Second }},
		{"429 with spent budget", func(now time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.TooManyRequests, Reset: now.Add(7 * time.Minute)}
		}, false, 429, false, func(time.Time, time.Time) time.Duration { return 7 * time.Minute }},
		{"429 without hints", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.TooManyRequests}
		}, false, 429, true, func(time.Time, time.Time) time.Duration { return time.Minute }},
		{"429 secondary without the documentation URL", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.TooManyRequests, NoDocURL: true, RetryAfter: 45 * time.Second}
		}, false, 429, true, func(time.Time, time.Time) time.Duration { return 45 * time.Second }},
		{"429 secondary fault", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit, Status: 429}
		}, false, 429, true, func(time.Time, time.Time) time.Duration { return time.Minute }},
		// A 403 secondary answer without the documentation URL used to be a plain 403.
		{"403 secondary without the documentation URL", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit, NoDocURL: true, RetryAfter: 20 * time.Second}
		}, false, 403, true, func(time.Time, time.Time) time.Duration { return 20 * time.Second }},
		{"403 secondary without the URL or hints", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit, NoDocURL: true}
		}, false, 403, true, func(time.Time, time.Time) time.Duration { return time.Minute }},
		{"403 primary", func(now time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.PrimaryRateLimit, Reset: now.Add(5 * time.Minute)}
		}, false, 403, false, func(time.Time, time.Time) time.Duration { return 5 * time.Minute }},
		{"403 secondary with Retry-After", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit, RetryAfter: 90 * time.Second}
		}, false, 403, true, func(time.Time, time.Time) time.Duration { return 90 * time.Second }},
		{"403 secondary with reset", func(now time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit, Reset: now.Add(2 * time.Minute)}
		}, false, 403, true, func(time.Time, time.Time) time.Duration { return 2 * time.Minute }},
		// GitHub sends X-RateLimit-Reset on every answer; go-github then blocks
		// secondary-limited calls until it, so the wait says so too.
		{"403 secondary with only the window reset", func(time.Time) fakegithub.Fault {
			return fakegithub.Fault{Kind: fakegithub.SecondaryRateLimit}
		}, false, 403, true, func(now, reset time.Time) time.Duration { return reset.Sub(now) }},
		{"budget spent for real", nil, true, 403, false, func(now, reset time.Time) time.Duration { return reset.Sub(now) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := newFake(t, fakegithub.Config{Now: clk.Now})
			if tt.exhaust {
				s.SetRateRemaining(0)
			} else {
				s.Inject(tt.fault(clk.Now()))
			}
			c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
			_, err := c.ListRunners(context.Background(), "tarty-")
			var rle *RateLimitError
			if !errors.As(err, &rle) {
				t.Fatalf("err = %T %v, want *RateLimitError", err, err)
			}
			want := tt.wantWait(clk.Now(), s.RateReset())
			if got, ok := tarty.RetryAfter(err); !ok || got != want {
				t.Errorf("RetryAfter = %v, %v; want %v", got, ok, want)
			}
			if rle.StatusCode != tt.wantStatus || rle.Secondary != tt.wantSecondary || !rle.Temporary() {
				t.Errorf("status %d secondary %v", rle.StatusCode, rle.Secondary)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "github: list runners: ") || !requestIDRe.MatchString(msg) {
				t.Errorf("error = %q", msg)
			}
			if strings.Contains(msg, s.Token()) {
				t.Errorf("token in error %q", msg)
			}
		})
	}
}

// After a primary limit go-github refuses locally until the reset; that
// refusal is the same typed error, and no request reaches GitHub.
func TestRateLimitLocalRefusal(t *testing.T) {
	clk := newClock()
	s := newFake(t, fakegithub.Config{Now: clk.Now})
	s.Inject(fakegithub.Fault{Kind: fakegithub.PrimaryRateLimit, Reset: clk.Now().Add(10 * time.Minute)})
	c := newTestClient(t, s, func(o *Options) { o.Clock = clk.Now })
	ctx := context.Background()
	if _, err := c.ListRunners(ctx, ""); err == nil {
		t.Fatal("want a rate-limit error")
	}
	calls := s.CallsMatching("", "")
	clk.Advance(4 * time.Minute)
	_, err := c.ListRunners(ctx, "")
	if d, ok := tarty.RetryAfter(err); !ok || d != 6*time.Minute {
		t.Fatalf("second call: %v (wait %v), want a 6m wait", err, d)
	}
	if s.CallsMatching("", "") != calls {
		t.Error("a request reached the server during the rate-limit wait")
	}
}

func TestServerErrorsAreTemporary(t *testing.T) {
	tests := []struct {
		status   int
		wantTemp bool
		fault    fakegithub.FaultKind
	}{
		{http.StatusBadGateway, true, fakegithub.ServerError},
		{http.StatusServiceUnavailable, true, fakegithub.ServerError},
		{http.StatusInternalServerError, true, fakegithub.ServerError},
		{http.StatusForbidden, false, fakegithub.Forbidden},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := newFake(t, fakegithub.Config{})
			s.Inject(fakegithub.Fault{Method: "DELETE", Kind: tt.fault, Status: tt.status})
			c := newTestClient(t, s, nil)
			err := c.RemoveRunner(context.Background(), 77)
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.status || ae.Temporary() != tt.wantTemp {
				t.Fatalf("err = %T %v", err, err)
			}
			if _, ok := tarty.RetryAfter(err); ok {
				t.Error("a non-rate-limit error carries a RetryAfter")
			}
			if tarty.IsBusy(err) {
				t.Error("looks busy")
			}
			if !strings.HasPrefix(err.Error(), "github: remove runner 77: ") || !requestIDRe.MatchString(err.Error()) {
				t.Errorf("error = %q", err)
			}
		})
	}
}

func TestBadTokenNeverInErrors(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	const secret = "ghp_wrongButSecret1234567890"
	c := newTestClient(t, s, func(o *Options) { o.Token = secret })
	ctx := context.Background()
	var errs []error
	_, _, err := c.JITConfig(ctx, "tarty-1")
	errs = append(errs, err)
	_, err = c.ListRunners(ctx, "")
	errs = append(errs, err)
	errs = append(errs, c.RemoveRunner(ctx, 1))
	_, err = c.QueuedJobs(ctx)
	errs = append(errs, err)
	errs = append(errs, c.CheckAccess(ctx))
	for _, err := range errs {
		if err == nil {
			t.Fatal("a bad token was accepted")
		}
		if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "Bad credentials") {
			t.Errorf("err = %v, want 401 Bad credentials", err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("token in error %q", err)
		}
	}
}

func TestWaitFromHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name      string
		h         http.Header
		secondary bool
		want      time.Duration
	}{
		{"retry-after seconds", h("Retry-After", "12"), false, 12 * time.Second},
		{"retry-after date", h("Retry-After", now.Add(3*time.Minute).UTC().Format(http.TimeFormat)), false, 3 * time.Minute},
		{"retry-after wins over reset", h("Retry-After", "5", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000600"), false, 5 * time.Second},
		{"reset when spent", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000600"), false, 10 * time.Minute},
		{"reset ignored with budget left", h("X-RateLimit-Remaining", "12", "X-RateLimit-Reset", "1800000600"), false, 0},
		{"reset for a secondary limit", h("X-RateLimit-Remaining", "12", "X-RateLimit-Reset", "1800000600"), true, 10 * time.Minute},
		{"past reset waits a second", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1799999000"), false, time.Second},
		{"absurd wait capped", h("Retry-After", "999999"), false, time.Hour},
		{"garbage", h("Retry-After", "soon"), false, 0},
	}
	for _, tt := range tests {
		if got := waitFromHeaders(tt.h, tt.secondary, now); got != tt.want {
			t.Errorf("%s: wait = %v, want %v", tt.name, got, tt.want)
		}
	}
}

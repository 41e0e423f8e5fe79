package ghapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v62/github"
)

// Sentinels for errors.Is; the typed errors below match them.
var (
	// ErrRunnerNameTaken: a runner with the requested name already exists (409).
	ErrRunnerNameTaken = errors.New("runner name taken")
	// ErrRunnerBusy: the runner is still running a job and cannot be removed (422).
	ErrRunnerBusy = errors.New("runner still running a job")
)

const (
	// defaultRetryAfter is the wait GitHub's docs advise when a rate-limit
	// answer says nothing about when to come back.
	defaultRetryAfter = time.Minute
	// maxRetryAfter caps a wait read from headers: the primary window is an hour.
	maxRetryAfter = time.Hour
)

type kind int

const (
	kindOther kind = iota
	kindNameTaken
	kindBusy
)

// APIError is an error answer from GitHub other than a rate limit: the
// operation, the status, GitHub's message and its request ID.
type APIError struct {
	Op         string // e.g. "generate JIT config for tarty-mac-1a2b3c4d"
	StatusCode int
	Message    string // GitHub's "message", may be empty
	RequestID  string // X-GitHub-Request-Id, may be empty
	kind       kind
	err        error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "github: %s: %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(oneLine(e.Message))
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns go-github's error.
func (e *APIError) Unwrap() error { return e.err }

// Is matches ErrRunnerNameTaken and ErrRunnerBusy.
func (e *APIError) Is(target error) bool {
	return (target == ErrRunnerNameTaken && e.NameTaken()) || (target == ErrRunnerBusy && e.Busy())
}

// Temporary reports a GitHub-side failure (5xx) worth retrying with backoff.
func (e *APIError) Temporary() bool { return e.StatusCode >= 500 && e.StatusCode <= 599 }

// NameTaken reports a JIT registration refused because the name exists (409).
func (e *APIError) NameTaken() bool { return e.kind == kindNameTaken }

// Busy reports a runner removal refused because the runner runs a job (422);
// retry later.
func (e *APIError) Busy() bool { return e.kind == kindBusy }

// NotFound reports a 404.
func (e *APIError) NotFound() bool { return e.StatusCode == http.StatusNotFound }

// RateLimitError is every way GitHub says "slow down": a primary rate limit
// (403 or 429 with X-RateLimit-Remaining 0), a secondary rate limit (403 with
// the secondary-rate-limits documentation URL), a plain 429, and go-github's
// refusal to send a request before a known reset.
type RateLimitError struct {
	Op         string
	StatusCode int  // 403 or 429; the synthetic status when go-github refused locally
	Secondary  bool // a secondary (abuse) limit rather than the hourly budget
	Wait       time.Duration
	RequestID  string
	Message    string
	err        error
}

func (e *RateLimitError) Error() string {
	what := "rate limited"
	if e.Secondary {
		what = "secondary rate limit"
	}
	s := fmt.Sprintf("github: %s: %d %s: %s, retry in %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode), what, e.Wait)
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Unwrap returns go-github's error.
func (e *RateLimitError) Unwrap() error { return e.err }

// RetryAfter is how long to wait before calling GitHub again.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

// Temporary is true: the request may succeed after RetryAfter.
func (e *RateLimitError) Temporary() bool { return true }

// classify turns what go-github returned into this package's errors. now is
// the client's clock, used for X-RateLimit-Reset.
func classify(op string, err error, k kind, now time.Time) error {
	if err == nil {
		return nil
	}
	var (
		rle  *github.RateLimitError
		abe  *github.AbuseRateLimitError
		ere  *github.ErrorResponse
		inst *ghinstallation.HTTPError
	)
	switch {
	case errors.As(err, &rle):
		e := rateLimited(op, rle.Response, rle.Message, false, err, now)
		if e.Wait == 0 && !rle.Rate.Reset.IsZero() { // go-github refused locally
			e.Wait = clampWait(rle.Rate.Reset.Sub(now))
		}
		return fillWait(e)
	case errors.As(err, &abe):
		e := rateLimited(op, abe.Response, abe.Message, true, err, now)
		if e.Wait == 0 && abe.RetryAfter != nil {
			e.Wait = clampWait(*abe.RetryAfter)
		}
		return fillWait(e)
	case errors.As(err, &ere) && ere.Response != nil:
		if ere.Response.StatusCode == http.StatusTooManyRequests {
			return fillWait(rateLimited(op, ere.Response, ere.Message, false, err, now))
		}
		return &APIError{
			Op: op, StatusCode: ere.Response.StatusCode, Message: ere.Message,
			RequestID: requestID(ere.Response), kind: k, err: err,
		}
	case errors.As(err, &inst) && inst.Response != nil:
		// The installation-token exchange failed with an HTTP answer.
		op += ": installation token"
		resp := inst.Response
		if resp.StatusCode == http.StatusTooManyRequests ||
			(resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0") {
			return fillWait(rateLimited(op, resp, "", false, err, now))
		}
		return &APIError{Op: op, StatusCode: resp.StatusCode, Message: bodyMessage(resp), RequestID: requestID(resp), err: err}
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

func rateLimited(op string, resp *http.Response, msg string, secondary bool, err error, now time.Time) *RateLimitError {
	e := &RateLimitError{Op: op, Secondary: secondary, Message: msg, err: err, StatusCode: http.StatusForbidden}
	if resp == nil {
		return e
	}
	e.StatusCode = resp.StatusCode
	e.RequestID = requestID(resp)
	e.Wait = waitFromHeaders(resp.Header, secondary, now)
	return e
}

func fillWait(e *RateLimitError) *RateLimitError {
	if e.Wait <= 0 {
		e.Wait = defaultRetryAfter
	}
	return e
}

// waitFromHeaders follows GitHub's advice: Retry-After when present; else
// the reset time when the budget is spent; else 0 (the caller picks the
// default, a minute). A secondary limit without Retry-After waits for
// X-RateLimit-Reset as well, because go-github refuses every request until
// then anyway.
func waitFromHeaders(h http.Header, secondary bool, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return clampWait(time.Duration(secs) * time.Second)
		}
		if at, err := http.ParseTime(v); err == nil {
			return clampWait(at.Sub(now))
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" && (secondary || h.Get("X-RateLimit-Remaining") == "0") {
		if epoch, err := strconv.ParseInt(v, 10, 64); err == nil && epoch > 0 {
			return clampWait(time.Unix(epoch, 0).Sub(now))
		}
	}
	return 0
}

// clampWait keeps a wait between one second (a reset already past still
// deserves a pause) and an hour (a header promising more is not believed).
func clampWait(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return time.Second
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}

// bodyMessage reads GitHub's "message" from an answer nobody else will read
// (ghinstallation leaves the body of a failed exchange open) and closes it.
func bodyMessage(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Message string `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil {
		return ""
	}
	return body.Message
}

func requestID(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Header.Get("X-GitHub-Request-Id")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

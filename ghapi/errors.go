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
	// ErrActionsDisabled: GitHub Actions is disabled for the organisation or
	// repository (409 "GitHub Actions is disabled ...").
	ErrActionsDisabled = errors.New("GitHub Actions is disabled")
	// ErrRepositoryRunnersDisabled: an organisation or enterprise policy
	// forbids repository-level self-hosted runners (403).
	ErrRepositoryRunnersDisabled = errors.New("repository-level self-hosted runners are disabled by policy")
	// ErrRunnerGroup: the runner group does not exist or may not be used.
	ErrRunnerGroup = errors.New("runner group unusable")
	// ErrJITUnsupported: the GitHub Enterprise Server is too old for
	// just-in-time runners (404 on generate-jitconfig before GHES 3.10).
	ErrJITUnsupported = errors.New("just-in-time runners unsupported by this GitHub Enterprise Server")
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
	kindActionsDisabled
	kindRepoRunnersDisabled
	kindGroup
	kindJITUnsupported
	kindSetup // another setting an operator must change (permissions, a missing repository)
)

// permanent reports the kinds that retrying cannot fix.
func (k kind) permanent() bool {
	switch k {
	case kindActionsDisabled, kindRepoRunnersDisabled, kindGroup, kindJITUnsupported, kindSetup:
		return true
	}
	return false
}

// APIError is an error answer from GitHub other than a rate limit: the
// operation, the status, GitHub's message and its request ID. When GitHub's
// answer means a setting must change before retrying can help (Actions
// disabled, a policy, the runner group, an old GitHub Enterprise Server,
// missing permissions), Permanent is true and Fix says what to change.
type APIError struct {
	Op         string // e.g. "generate JIT config for tarty-mac-1a2b3c4d"
	StatusCode int    // 0 when the problem was found in an answer that succeeded
	Message    string // GitHub's "message", may be empty
	RequestID  string // X-GitHub-Request-Id, may be empty
	// Fix is one line telling the operator what to change, for permanent errors.
	Fix  string
	kind kind
	err  error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "github: %s", e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(oneLine(e.Message))
	}
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns go-github's error.
func (e *APIError) Unwrap() error { return e.err }

// Is matches the sentinels ErrRunnerNameTaken, ErrRunnerBusy,
// ErrActionsDisabled, ErrRepositoryRunnersDisabled, ErrRunnerGroup and
// ErrJITUnsupported.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRunnerNameTaken:
		return e.kind == kindNameTaken
	case ErrRunnerBusy:
		return e.kind == kindBusy
	case ErrActionsDisabled:
		return e.kind == kindActionsDisabled
	case ErrRepositoryRunnersDisabled:
		return e.kind == kindRepoRunnersDisabled
	case ErrRunnerGroup:
		return e.kind == kindGroup
	case ErrJITUnsupported:
		return e.kind == kindJITUnsupported
	}
	return false
}

// Permanent reports that retrying will not help until an operator changes a
// setting on GitHub (Fix says which): the scheduler should stop retrying
// quickly and show the error.
func (e *APIError) Permanent() bool { return e.kind.permanent() }

// HostFix is Fix for permanent errors and "" otherwise, so that
// tarty.HostFix treats a GitHub setting that blocks every launch like a host
// problem: the slot degrades with this one-line fix instead of retrying hot.
func (e *APIError) HostFix() string {
	if !e.Permanent() {
		return ""
	}
	return e.Fix
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
// (403 or 429 with X-RateLimit-Remaining 0), a secondary rate limit (403 or
// 429 that says "secondary rate limit" in its message or documentation URL,
// and any other 429: GitHub's budget was not spent, so the limit is a
// secondary one), and a refusal to send a request before a known reset or
// the end of a secondary wait (go-github's or this client's).
type RateLimitError struct {
	Op         string
	StatusCode int  // 403 or 429; the synthetic status when go-github refused locally
	Secondary  bool // a secondary (abuse) limit rather than the hourly budget
	Wait       time.Duration
	RequestID  string
	Message    string
	err        error
	local      bool // refused by this client, no request sent
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
	if e.local {
		s += " (not sent)"
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
		e := rateLimited(op, rle.Response, rle.Message, false, false, err, now)
		if e.Wait == 0 && !rle.Rate.Reset.IsZero() { // go-github refused locally
			e.Wait = clampWait(rle.Rate.Reset.Sub(now))
		}
		return fillWait(e)
	case errors.As(err, &abe):
		// go-github refuses every request until X-RateLimit-Reset after
		// this one, so the wait says so too.
		e := rateLimited(op, abe.Response, abe.Message, true, true, err, now)
		if e.Wait == 0 && abe.RetryAfter != nil {
			e.Wait = clampWait(*abe.RetryAfter)
		}
		return fillWait(e)
	case errors.As(err, &ere) && ere.Response != nil:
		resp := ere.Response
		if limited, secondary := rateLimitAnswer(resp.StatusCode, resp.Header, ere.Message, ere.DocumentationURL); limited {
			return fillWait(rateLimited(op, resp, ere.Message, secondary, false, err, now))
		}
		return &APIError{
			Op: op, StatusCode: resp.StatusCode, Message: ere.Message,
			RequestID: requestID(resp), kind: k, err: err,
		}
	case errors.As(err, &inst) && inst.Response != nil:
		// The installation-token exchange failed with an HTTP answer.
		op += ": installation token"
		resp := inst.Response
		msg := bodyMessage(resp)
		if limited, secondary := rateLimitAnswer(resp.StatusCode, resp.Header, msg, ""); limited {
			return fillWait(rateLimited(op, resp, msg, secondary, false, err, now))
		}
		e := &APIError{Op: op, StatusCode: resp.StatusCode, Message: msg, RequestID: requestID(resp), err: err}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			e.kind, e.Fix = kindSetup, "GitHub refused the App's signed token: check github.app.id and github.app.private_key_file"
		case http.StatusNotFound, http.StatusForbidden:
			e.kind, e.Fix = kindSetup, "GitHub has no such installation of the App: check github.app.installation_id and that the App is installed on the organization"
		}
		return e
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

// rateLimitAnswer reads a 403 or 429 that go-github left as a plain error
// response: GitHub answers a secondary limit with either status, and its body
// says "You have exceeded a secondary rate limit" whether or not it carries
// the documentation URL go-github looks for. A 429 whose budget is not spent
// (X-RateLimit-Remaining is not 0) is a secondary limit too; one with the
// budget spent is the primary limit.
func rateLimitAnswer(status int, h http.Header, message, docURL string) (limited, secondary bool) {
	if status != http.StatusForbidden && status != http.StatusTooManyRequests {
		return false, false
	}
	lm, ld := strings.ToLower(message), strings.ToLower(docURL)
	switch {
	case strings.Contains(lm, "secondary rate limit") || strings.Contains(lm, "abuse detection") ||
		strings.Contains(ld, "secondary-rate-limits") || strings.Contains(ld, "abuse-rate-limits"):
		return true, true
	case h.Get("X-RateLimit-Remaining") == "0" || strings.Contains(lm, "api rate limit exceeded"):
		return true, false
	case status == http.StatusTooManyRequests:
		return true, true
	}
	return false, false
}

func rateLimited(op string, resp *http.Response, msg string, secondary, untilReset bool, err error, now time.Time) *RateLimitError {
	e := &RateLimitError{Op: op, Secondary: secondary, Message: msg, err: err, StatusCode: http.StatusForbidden}
	if resp == nil {
		return e
	}
	e.StatusCode = resp.StatusCode
	e.RequestID = requestID(resp)
	e.Wait = waitFromHeaders(resp.Header, untilReset, now)
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
// default, a minute). With untilReset (a secondary limit go-github
// recognised, after which it refuses every request until X-RateLimit-Reset)
// the reset time counts even with budget left.
func waitFromHeaders(h http.Header, untilReset bool, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return clampWait(time.Duration(secs) * time.Second)
		}
		if at, err := http.ParseTime(v); err == nil {
			return clampWait(at.Sub(now))
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" && (untilReset || h.Get("X-RateLimit-Remaining") == "0") {
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

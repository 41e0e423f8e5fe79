package fakegithub

import (
	"net/http"
	"strconv"
	"time"
)

// FaultKind is a scripted failure.
type FaultKind int

// The failures Inject can script.
const (
	// ServerError answers Status (default 502) with {"message":"Server Error"}.
	ServerError FaultKind = iota + 1
	// TooManyRequests answers 429, with Retry-After when RetryAfter is set.
	// With Reset set the budget is spent (X-RateLimit-Remaining: 0, "API rate
	// limit exceeded"): the primary limit. Without it the budget is not
	// spent and the body says "You have exceeded a secondary rate limit", as
	// GitHub's 429s do (with the documentation URL unless NoDocURL).
	TooManyRequests
	// PrimaryRateLimit answers 403 with X-RateLimit-Remaining: 0 and
	// X-RateLimit-Reset at Reset (default: the end of the current window).
	PrimaryRateLimit
	// SecondaryRateLimit answers 403 (or Status 429) "You have exceeded a
	// secondary rate limit" with a documentation_url ending in
	// #about-secondary-rate-limits (none with NoDocURL), and Retry-After
	// when RetryAfter is set.
	SecondaryRateLimit
	// Forbidden answers 403 "Resource not accessible by integration", as
	// GitHub does when the token lacks a permission.
	Forbidden
	// NotFound answers 404 "Not Found" (a resource gone, or hidden from the token).
	NotFound
)

// Fault scripts the answer to the next requests that match Method and Path.
type Fault struct {
	Method string // "" matches any method
	// Path is a path.Match pattern on the path without /api/v3 and query,
	// e.g. "/repos/acme/*/actions/runs"; "" matches any path.
	Path string
	Kind FaultKind
	// Times is how many matching requests fail: 0 means 1, negative means
	// every one until ClearFaults.
	Times int
	// Status is the 5xx code of a ServerError (default 502), or 429 for a
	// SecondaryRateLimit answered as 429 (default 403).
	Status int
	// NoDocURL leaves the documentation URL out of a secondary limit's body,
	// as some of GitHub's answers do (go-github then does not recognise it).
	NoDocURL bool
	// RetryAfter, when positive, is sent as Retry-After in whole seconds.
	RetryAfter time.Duration
	// Reset, when set, is sent as X-RateLimit-Reset; except for a secondary
	// limit it comes with X-RateLimit-Remaining: 0 (a spent budget). A primary
	// rate limit always has remaining 0.
	Reset time.Time
}

// Inject adds a scripted fault; faults are checked in the order added.
func (s *Server) Inject(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults drops every scripted fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) takeFault(method, p string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !matchReq(f.Method, f.Path, method, p) {
			continue
		}
		c := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &c
	}
	return nil
}

func (s *Server) writeFault(w http.ResponseWriter, f *Fault, free bool) {
	// A failed request still spends a unit, as on GitHub; the rate-limit
	// faults then overwrite the headers with what they script.
	s.writeRate(w, !free)
	h := w.Header()
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
	if !f.Reset.IsZero() || f.Kind == PrimaryRateLimit {
		reset := f.Reset
		if reset.IsZero() {
			reset = s.RateReset()
		}
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		if f.Kind != SecondaryRateLimit {
			h.Set("X-RateLimit-Remaining", "0")
		}
	}
	switch f.Kind {
	case ServerError:
		st := f.Status
		if st < 500 || st > 599 {
			st = http.StatusBadGateway
		}
		writeJSON(w, st, errorBody{Message: "Server Error"})
	case TooManyRequests:
		if f.Reset.IsZero() {
			writeJSON(w, http.StatusTooManyRequests, secondaryBody(f.NoDocURL))
			return
		}
		writeJSON(w, http.StatusTooManyRequests, errorBody{
			Message:          "API rate limit exceeded for user ID 1.",
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
		})
	case PrimaryRateLimit:
		writeJSON(w, http.StatusForbidden, errorBody{
			Message:          "API rate limit exceeded for user.",
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-rate-limits",
		})
	case SecondaryRateLimit:
		st := http.StatusForbidden
		if f.Status == http.StatusTooManyRequests {
			st = f.Status
		}
		writeJSON(w, st, secondaryBody(f.NoDocURL))
	case NotFound:
		writeError(w, http.StatusNotFound, "Not Found")
	default: // Forbidden
		writeError(w, http.StatusForbidden, "Resource not accessible by integration")
	}
}

func secondaryBody(noDocURL bool) errorBody {
	b := errorBody{Message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID."}
	if !noDocURL {
		b.DocumentationURL = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
	}
	return b
}

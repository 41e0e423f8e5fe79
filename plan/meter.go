package plan

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Meter is an http.RoundTripper that counts what GitHub's answers cost: a
// GET answered with anything but 304 Not Modified spends one unit of the
// primary rate limit (a 304 to a conditional request is free; /rate_limit
// is free). It also keeps the last X-RateLimit-Remaining and -Reset. Put it
// under the client's ETag cache (ghapi.Options.Transport), where the 304s
// are seen. The zero value sends through http.DefaultTransport.
type Meter struct {
	Next http.RoundTripper

	mu        sync.Mutex
	units     int
	requests  int
	remaining int
	reset     time.Time
	known     bool
}

// NewMeter counts what goes through next.
func NewMeter(next http.RoundTripper) *Meter { return &Meter{Next: next} }

// RoundTrip sends req and counts its answer.
func (m *Meter) RoundTrip(req *http.Request) (*http.Response, error) {
	next := m.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests++
	if req.Method == http.MethodGet && resp.StatusCode != http.StatusNotModified && !strings.HasSuffix(req.URL.Path, "/rate_limit") {
		m.units++
	}
	if v := resp.Header.Get("X-RateLimit-Remaining"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			m.remaining, m.known = n, true
			if s, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				m.reset = time.Unix(s, 0)
			}
		}
	}
	return resp, nil
}

// Units is how many rate-limit units the answers so far cost.
func (m *Meter) Units() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.units
}

// Requests is how many requests were sent.
func (m *Meter) Requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

// Remaining is GitHub's last word on the budget left and when it resets; ok
// is false before any answer said.
func (m *Meter) Remaining() (n int, reset time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.remaining, m.reset, m.known
}

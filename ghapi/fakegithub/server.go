package fakegithub

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the personal access token the server accepts when Config
// names neither a Token nor an App.
const DefaultToken = "ghp_fakegithubDefaultToken0000000000000"

// DefaultOrganization is the organisation served when Config leaves it empty.
const DefaultOrganization = "acme"

// Config sets up a Server. The zero value serves organisation "acme" to
// DefaultToken with a budget of 5000 requests an hour.
type Config struct {
	Organization string
	// Token is the personal access token accepted in Authorization
	// ("Bearer X" or "token X").
	Token string
	// App enables the installation-token exchange; the tokens it issues are
	// accepted like Token.
	App *App
	// RateLimit is the primary budget per hour window (default 5000).
	RateLimit int
	// Now is the server's clock (default time.Now): rate-limit windows, token
	// expiry, JWT validity and timestamps of new objects.
	Now func() time.Time

	// WebhookURL, when set, receives workflow_job deliveries as GitHub's
	// organisation webhook would: when a job is queued (or waits for an
	// approval), taken (in_progress) and finished (completed).
	WebhookURL string
	// WebhookSecret signs deliveries (X-Hub-Signature-256, and the legacy
	// X-Hub-Signature); empty sends them unsigned.
	WebhookSecret string
	// WebhookForm sends deliveries form-encoded (payload=<JSON>), the
	// default of hooks created through the REST API.
	WebhookForm bool
	// WebhookHookID is X-GitHub-Hook-ID (default 424242).
	WebhookHookID int64

	// EnterpriseVersion, when set ("3.9.2"), makes the server a GitHub
	// Enterprise Server of that version: every answer carries
	// X-GitHub-Enterprise-Version, and before 3.10 the generate-jitconfig
	// endpoints do not exist (404).
	EnterpriseVersion string
}

// App is the GitHub App whose JWTs the server accepts.
type App struct {
	ID             int64
	InstallationID int64
	PublicKey      *rsa.PublicKey
	// TokenTTL is the lifetime of issued installation tokens (default 1h).
	TokenTTL time.Duration
}

// Server is a fake GitHub API. Create it with New and Close it when done.
type Server struct {
	cfg  Config
	srv  *httptest.Server
	mux  *http.ServeMux
	now  func() time.Time
	org  string
	lim  int
	mu   sync.Mutex
	st   state
	rate struct {
		remaining, used int
		reset           time.Time
	}
	tokens map[string]time.Time // installation token -> expiry
	faults []*Fault
	calls  map[string]int // "METHOD /path" without /api/v3 and query
	seq    uint64
	salt   int // bumped by RotateInstallationTokens

	changed chan struct{} // closed and replaced on every state change (bump)
	done    chan struct{} // closed by Close: ends fake runners' long polls
	hooks   *hooks        // nil without WebhookURL
	up      upkeepState   // releases, runner downloads, hooks (upkeep.go)
}

type ctxKey int

const prefixKey ctxKey = 0

// New starts a Server on a loopback port.
func New(cfg Config) *Server {
	if cfg.Organization == "" {
		cfg.Organization = DefaultOrganization
	}
	if cfg.Token == "" && cfg.App == nil {
		cfg.Token = DefaultToken
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 5000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.App != nil && cfg.App.TokenTTL <= 0 {
		cfg.App.TokenTTL = time.Hour
	}
	s := &Server{
		cfg:    cfg,
		now:    cfg.Now,
		org:    cfg.Organization,
		lim:    cfg.RateLimit,
		tokens: map[string]time.Time{},
		calls:  map[string]int{},
	}
	s.st.init()
	s.rate.remaining = s.lim
	s.rate.reset = s.now().Add(time.Hour)
	s.changed = make(chan struct{})
	s.done = make(chan struct{})
	if cfg.WebhookURL != "" {
		s.hooks = newHooks(cfg, cfg.Now)
	}
	s.routes()
	s.srv = httptest.NewServer(s)
	return s
}

// bump wakes everything waiting for a state change; the caller holds s.mu.
func (s *Server) bump() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// apiURL is the URL of an API path (no leading slash) in the server's layout.
func (s *Server) apiURL(p string) string { return s.srv.URL + "/" + p }

// URL is the github.com-style base URL, with a trailing slash.
func (s *Server) URL() string { return s.srv.URL + "/" }

// EnterpriseURL is the GitHub Enterprise Server-style base URL (.../api/v3/).
func (s *Server) EnterpriseURL() string { return s.srv.URL + "/api/v3/" }

// Addr is the listener's host:port.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Organization is the organisation the server knows.
func (s *Server) Organization() string { return s.org }

// Token is the personal access token the server accepts ("" when only an App is configured).
func (s *Server) Token() string { return s.cfg.Token }

// Close shuts the server down: fake runners' long polls end, and queued
// webhook deliveries are abandoned.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.mu.Unlock()
	s.srv.Close()
	if s.hooks != nil {
		s.hooks.stop()
	}
}

// RotateInstallationTokens changes the ETag of every answer to a GitHub App
// installation token, as GitHub's hourly token refresh does (ETags are per
// token), without the client having to fetch a new token: the next
// conditional request for each URL misses once and costs a unit.
func (s *Server) RotateInstallationTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.salt++
}

// ServeHTTP runs the common part of every request: prefix, auth, scripted
// faults, rate limit, the route, then ETag and rate-limit headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, prefix := r.URL.Path, ""
	if p == "/api/v3" || strings.HasPrefix(p, "/api/v3/") {
		prefix, p = "/api/v3", strings.TrimPrefix(p, "/api/v3")
		if p == "" {
			p = "/"
		}
	}
	r2 := r.Clone(context.WithValue(r.Context(), prefixKey, prefix))
	r2.URL.Path, r2.URL.RawPath = p, ""
	if strings.HasPrefix(p, RunnerProtocolPath) {
		s.serveRunnerProtocol(w, r2)
		return
	}
	if v := s.cfg.EnterpriseVersion; v != "" {
		w.Header().Set("X-GitHub-Enterprise-Version", v)
		w.Header().Set("X-GitHub-Enterprise-Host", r.Host)
	}

	s.mu.Lock()
	s.calls[r.Method+" "+p]++
	s.seq++
	reqID := fmt.Sprintf("%04X:%04X:%06X:%07X:%08X", s.seq%0xFFFF, (s.seq*7919)%0xFFFF, s.seq*31, s.seq*977, uint32(s.seq*2654435761))
	s.mu.Unlock()
	w.Header().Set("X-GitHub-Request-Id", reqID)
	w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")

	exchange := r.Method == http.MethodPost && tokenExchangePath(p)
	free := exchange || p == "/rate_limit"
	if !exchange && !s.authorized(r2) {
		s.writeRate(w, false)
		writeJSON(w, http.StatusUnauthorized, errorBody{Message: "Bad credentials", DocumentationURL: "https://docs.github.com/rest"})
		return
	}
	if f := s.takeFault(r.Method, p); f != nil {
		s.writeFault(w, f, free)
		return
	}
	if !free && s.exhausted() {
		s.writeRate(w, false)
		writeJSON(w, http.StatusForbidden, errorBody{
			Message:          "API rate limit exceeded for user.",
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-rate-limits",
		})
		return
	}

	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, r2)
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	if r.Method == http.MethodGet && rec.Code == http.StatusOK {
		// ETags are per token, as on GitHub (Vary: Authorization).
		h := sha256.New()
		h.Write(body)
		auth := r.Header.Get("Authorization")
		s.mu.Lock()
		salt := s.salt
		s.mu.Unlock()
		if s.cfg.Token != "" && strings.HasSuffix(auth, " "+s.cfg.Token) {
			salt = 0 // a personal access token does not change
		}
		fmt.Fprintf(h, "\x00%s\x00%d", auth, salt)
		sum := h.Sum(nil)
		etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
		w.Header().Set("Vary", "Accept, Authorization, Cookie")
		w.Header().Set("ETag", etag)
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			// A 304 costs nothing against the primary rate limit.
			s.writeRate(w, false)
			w.Header().Del("Content-Type")
			w.Header().Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	s.writeRate(w, !free)
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func tokenExchangePath(p string) bool {
	ok, _ := path.Match("/app/installations/*/access_tokens", p)
	return ok
}

func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// authorized reports whether r carries the PAT or a live installation token.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	var tok string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		tok = strings.TrimPrefix(h, "Bearer ")
	case strings.HasPrefix(h, "token "):
		tok = strings.TrimPrefix(h, "token ")
	default:
		return false
	}
	if s.cfg.Token != "" && tok == s.cfg.Token {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && s.now().Before(exp)
}

// exhausted rolls the rate-limit window and reports whether it is spent.
func (s *Server) exhausted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindow()
	return s.rate.remaining <= 0
}

func (s *Server) rollWindow() {
	if now := s.now(); !now.Before(s.rate.reset) {
		s.rate.remaining, s.rate.used, s.rate.reset = s.lim, 0, now.Add(time.Hour)
	}
}

// writeRate sets the X-RateLimit-* headers, after spending one unit if spend.
func (s *Server) writeRate(w http.ResponseWriter, spend bool) {
	s.mu.Lock()
	s.rollWindow()
	if spend && s.rate.remaining > 0 {
		s.rate.remaining--
		s.rate.used++
	}
	rem, used, reset := s.rate.remaining, s.rate.used, s.rate.reset
	s.mu.Unlock()
	setRateHeaders(w.Header(), s.lim, rem, used, reset)
}

func setRateHeaders(h http.Header, limit, remaining, used int, reset time.Time) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

// RateRemaining is what is left of the primary budget in the current window.
func (s *Server) RateRemaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindow()
	return s.rate.remaining
}

// SetRateRemaining sets what is left of the budget in the current window; at 0
// every counted request answers 403 with X-RateLimit-Remaining: 0 until the
// window resets.
func (s *Server) SetRateRemaining(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindow()
	s.rate.remaining = n
	s.rate.used = s.lim - n
}

// RateReset is when the current rate-limit window ends.
func (s *Server) RateReset() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindow()
	return s.rate.reset
}

// Calls counts requests by method and exact path (without /api/v3 and query),
// e.g. Calls("GET", "/orgs/acme/repos").
func (s *Server) Calls(method, p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method+" "+p]
}

// CallsMatching counts requests whose method equals method ("" = any) and
// whose path matches the path.Match pattern ("" = any).
func (s *Server) CallsMatching(method, pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls {
		m, p, _ := strings.Cut(k, " ")
		if matchReq(method, pattern, m, p) {
			n += c
		}
	}
	return n
}

// CallLog lists "METHOD /path" keys with their counts, sorted, for failure messages.
func (s *Server) CallLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.calls))
	for k, c := range s.calls {
		out = append(out, fmt.Sprintf("%s x%d", k, c))
	}
	sort.Strings(out)
	return out
}

// ResetCalls forgets the call counts.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

func matchReq(method, pattern, m, p string) bool {
	if method != "" && !strings.EqualFold(method, m) {
		return false
	}
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

type errorBody struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url,omitempty"`
	Status           string `json:"status,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"fake: encode failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeFound answers a single object: out, or 404 when it is nil.
func writeFound(w http.ResponseWriter, out map[string]any) {
	if out == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{
		Message:          msg,
		DocumentationURL: "https://docs.github.com/rest",
		Status:           strconv.Itoa(status),
	})
}

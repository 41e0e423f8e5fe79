package fakegithub

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, method, url, auth string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(""))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestAuthETagAndRateLimit(t *testing.T) {
	s := New(Config{RateLimit: 10})
	defer s.Close()
	s.AddRepo("app")
	url := s.EnterpriseURL() + "repos/acme/app/actions/runs?status=queued"

	resp, body := do(t, "GET", url, "wrong")
	if resp.StatusCode != 401 || !strings.Contains(body, "Bad credentials") || resp.Header.Get("X-GitHub-Request-Id") == "" {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
	if s.RateRemaining() != 10 {
		t.Errorf("a 401 spent budget")
	}
	resp, body = do(t, "GET", url, DefaultToken)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || resp.Header.Get("X-RateLimit-Remaining") != "9" ||
		!strings.Contains(body, `"total_count":0`) {
		t.Fatalf("first: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = do(t, "GET", url, DefaultToken, "If-None-Match", etag)
	if resp.StatusCode != 304 || body != "" || resp.Header.Get("X-RateLimit-Remaining") != "9" {
		t.Fatalf("conditional: %d %q remaining %s", resp.StatusCode, body, resp.Header.Get("X-RateLimit-Remaining"))
	}
	s.AddRun("app", "queued", time.Time{}, JobSpec{Labels: []string{"x"}})
	if resp, _ = do(t, "GET", url, DefaultToken, "If-None-Match", etag); resp.StatusCode != 200 {
		t.Fatalf("changed resource answered %d", resp.StatusCode)
	}
	if got := s.RateRemaining(); got != 8 {
		t.Errorf("remaining = %d, want 8", got)
	}
	s.SetRateRemaining(0)
	resp, _ = do(t, "GET", s.URL()+"repos/acme/app", DefaultToken)
	if resp.StatusCode != 403 || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("spent budget answered %d", resp.StatusCode)
	}
	if resp, _ = do(t, "GET", s.URL()+"rate_limit", DefaultToken); resp.StatusCode != 200 {
		t.Errorf("/rate_limit is free but answered %d", resp.StatusCode)
	}
	if got := s.Calls("GET", "/repos/acme/app/actions/runs"); got != 4 {
		t.Errorf("Calls = %d, want 4 (%v)", got, s.CallLog())
	}
}

func TestPagingLinks(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.AddRunner("", fmt.Sprintf("r%d", i))
	}
	resp, body := do(t, "GET", s.EnterpriseURL()+"orgs/acme/actions/runners?per_page=2&page=2", DefaultToken)
	var out struct {
		TotalCount int `json:"total_count"`
		Runners    []struct {
			Name string `json:"name"`
		} `json:"runners"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if out.TotalCount != 5 || len(out.Runners) != 2 || out.Runners[0].Name != "r2" {
		t.Fatalf("page 2: %+v", out)
	}
	link := resp.Header.Get("Link")
	for _, want := range []string{`/api/v3/orgs/acme/actions/runners?page=3&per_page=2>; rel="next"`, `page=3&per_page=2>; rel="last"`, `page=1&per_page=2>; rel="first"`, `page=1&per_page=2>; rel="prev"`} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
}

func TestFaultsCountDown(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	s.Inject(Fault{Method: "GET", Path: "/orgs/*/actions/runners", Kind: ServerError, Times: 2, Status: 503})
	url := s.URL() + "orgs/acme/actions/runners"
	for i, want := range []int{503, 503, 200} {
		if resp, _ := do(t, "GET", url, DefaultToken); resp.StatusCode != want {
			t.Errorf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	s.Inject(Fault{Kind: TooManyRequests, RetryAfter: 1500 * time.Millisecond})
	resp, _ := do(t, "GET", url, DefaultToken)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("429: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestJobStatusDrivesRunStatus(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	r := s.AddRun("app", "queued", time.Time{}, JobSpec{}, JobSpec{})
	steps := []struct {
		job    int
		status string
		want   string
	}{{0, "in_progress", "in_progress"}, {0, "completed", "in_progress"}, {1, "completed", "completed"}}
	for _, st := range steps {
		if err := s.SetJobStatus(r.JobIDs[st.job], st.status, "tarty-1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Run(r.ID); got.Status != st.want {
			t.Errorf("after job %d %s: run %s, want %s", st.job, st.status, got.Status, st.want)
		}
	}
}

func TestParseCreated(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	tests := []struct {
		expr string
		t    string
		want bool
	}{
		{">=2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", true},
		{">=2026-03-01T10:00:00Z", "2026-03-01T09:59:59Z", false},
		{">2026-03-01", "2026-03-01T23:00:00Z", false},
		{">2026-03-01", "2026-03-02T00:00:00Z", true},
		{"<2026-03-01", "2026-02-28T23:59:59Z", true},
		{"<=2026-03-01", "2026-03-01T23:59:59Z", true},
		{"2026-03-01..2026-03-02", "2026-03-02T12:00:00Z", true},
		{"2026-03-01..2026-03-02", "2026-03-03T00:00:00Z", false},
		{"2026-03-01", "2026-03-01T05:00:00Z", true},
	}
	for _, tt := range tests {
		f, err := parseCreated(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if got := f(at(tt.t)); got != tt.want {
			t.Errorf("%s on %s = %v", tt.expr, tt.t, got)
		}
	}
	if _, err := parseCreated(">=yesterday"); err == nil {
		t.Error("garbage accepted")
	}
}

func signJWT(t *testing.T, key *rsa.PrivateKey, alg string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	head := enc(map[string]string{"alg": alg, "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(head))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestAppJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	s := New(Config{App: &App{ID: 7, InstallationID: 8, PublicKey: &key.PublicKey}})
	defer s.Close()
	now := time.Now().Unix()
	good := map[string]any{"iss": "7", "iat": now - 30, "exp": now + 90}
	tests := []struct {
		name string
		jwt  string
		want int
	}{
		{"valid", signJWT(t, key, "RS256", good), 201},
		{"numeric iss", signJWT(t, key, "RS256", map[string]any{"iss": 7, "iat": now - 30, "exp": now + 90}), 201},
		{"other key", signJWT(t, other, "RS256", good), 401},
		{"wrong alg", signJWT(t, key, "RS512", good), 401},
		{"wrong iss", signJWT(t, key, "RS256", map[string]any{"iss": "8", "iat": now - 30, "exp": now + 90}), 401},
		{"expired", signJWT(t, key, "RS256", map[string]any{"iss": "7", "iat": now - 700, "exp": now - 100}), 401},
		{"too long", signJWT(t, key, "RS256", map[string]any{"iss": "7", "iat": now, "exp": now + 3600}), 401},
		{"garbage", "abc.def", 401},
	}
	for _, tt := range tests {
		resp, body := do(t, "POST", s.URL()+"app/installations/8/access_tokens", tt.jwt)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d %s", tt.name, resp.StatusCode, body)
			continue
		}
		if tt.want != 201 {
			continue
		}
		var tok struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(body), &tok); err != nil || !strings.HasPrefix(tok.Token, "ghs_") || time.Until(tok.ExpiresAt) < 59*time.Minute {
			t.Fatalf("%s: token answer %s", tt.name, body)
		}
		if resp, _ := do(t, "GET", s.URL()+"orgs/acme", tok.Token); resp.StatusCode != 200 {
			t.Errorf("%s: issued token refused: %d", tt.name, resp.StatusCode)
		}
		// The JWT itself is not an API credential.
		if resp, _ := do(t, "GET", s.URL()+"orgs/acme", tt.jwt); resp.StatusCode != 401 {
			t.Errorf("%s: JWT accepted as a token", tt.name)
		}
	}
}

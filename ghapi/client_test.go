package ghapi

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/scheduler"
)

// The scheduler's ports, asserted where a test sees them fail.
var (
	_ scheduler.Runners = (*Client)(nil)
	_ scheduler.Jobs    = (*Client)(nil)
)

func TestClientImplementsSchedulerPorts(t *testing.T) {
	var c any = &Client{}
	if _, ok := c.(scheduler.Runners); !ok {
		t.Error("*Client is not a scheduler.Runners")
	}
	if _, ok := c.(scheduler.Jobs); !ok {
		t.Error("*Client is not a scheduler.Jobs")
	}
}

// testClock is a settable clock shared by the fake and the client.
type testClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newClock() *testClock {
	// Whole seconds, like X-RateLimit-Reset, so waits compare exactly.
	return &testClock{t: time.Now().Truncate(time.Second)}
}

// newClockInHour starts five minutes into the current hour, so a test that
// advances it by less than 55 minutes keeps the same hour-rounded poll URL.
func newClockInHour() *testClock {
	return &testClock{t: time.Now().Truncate(time.Hour).Add(5 * time.Minute)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep is an Options.Sleep that advances the clock instead of waiting, and
// records each wait.
func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *testClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// recorder is a Transport that remembers the URLs it carried.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	urls []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.Method+" "+req.URL.String())
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) URLs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.urls...)
}

// dialTo is a Transport that connects every request to addr, whatever its
// host name, so a github.com-style api.* URL can reach the fake.
func dialTo(t *testing.T, addr string) *http.Transport {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newFake(t *testing.T, cfg fakegithub.Config) *fakegithub.Server {
	t.Helper()
	s := fakegithub.New(cfg)
	t.Cleanup(s.Close)
	return s
}

// newTestClient returns a PAT client against the fake's Enterprise URL;
// mutate adjusts the options.
func newTestClient(t *testing.T, s *fakegithub.Server, mutate func(*Options)) *Client {
	t.Helper()
	o := Options{
		BaseURL:      s.EnterpriseURL(),
		Token:        s.Token(),
		Organization: s.Organization(),
		Labels:       []string{"tarty"},
		UserAgent:    "tarty/test",
	}
	if mutate != nil {
		mutate(&o)
	}
	if o.Sleep == nil {
		// Writes are spaced a second apart; tests that check it set Sleep.
		o.Sleep = func(context.Context, time.Duration) error { return nil }
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestNewRejectsBadOptions(t *testing.T) {
	valid := func() Options { return Options{Organization: "acme", Token: "ghp_x"} }
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no organization", func(o *Options) { o.Organization = "" }, "organization is required"},
		{"no credentials", func(o *Options) { o.Token = "" }, "token or an App is required"},
		{"both credentials", func(o *Options) { o.App = &App{ID: 1, InstallationID: 2, PrivateKey: []byte("k")} }, "not both"},
		{"incomplete app", func(o *Options) { o.Token = ""; o.App = &App{ID: 1} }, "App needs"},
		{"bad key", func(o *Options) {
			o.Token = ""
			o.App = &App{ID: 1, InstallationID: 2, PrivateKey: []byte("not a pem")}
		}, "private key"},
		{"foreign repository", func(o *Options) { o.Repository = "other/app" }, "must be NAME or acme/NAME"},
		{"nested repository", func(o *Options) { o.Repository = "acme/app/x" }, "must be NAME"},
		{"bad scheme", func(o *Options) { o.BaseURL = "ftp://ghe.example.com/" }, "base URL"},
		{"credentials in base URL", func(o *Options) { o.BaseURL = "https://u:secretpw@ghe.example.com/" }, "no credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mutate(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secretpw") || strings.Contains(err.Error(), "ghp_x") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestAPIBase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "https://api.github.com/"},
		{"https://api.github.com", "https://api.github.com/"},
		{"https://ghe.example.com", "https://ghe.example.com/api/v3/"},
		{"https://ghe.example.com/", "https://ghe.example.com/api/v3/"},
		{"https://ghe.example.com/api/v3", "https://ghe.example.com/api/v3/"},
		{"https://ghe.example.com/api/v3/", "https://ghe.example.com/api/v3/"},
	}
	for _, tt := range tests {
		u, err := apiBase(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("apiBase(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

// TestBaseURLs runs the same call against the github.com layout (no prefix,
// reached through an api.* host name dialled to the fake) and the Enterprise
// layout (/api/v3/, given with or without the suffix).
func TestBaseURLs(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	s.AddRunner("", "tarty-a-1")
	dialFake := dialTo(t, s.Addr())
	plain := strings.TrimSuffix(s.URL(), "/")
	tests := []struct {
		name, base, wantPrefix string
	}{
		{"github.com layout", "http://api.github.test/", "http://api.github.test/orgs/acme/actions/runners"},
		{"enterprise", s.EnterpriseURL(), plain + "/api/v3/orgs/acme/actions/runners"},
		{"enterprise without suffix", plain, plain + "/api/v3/orgs/acme/actions/runners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{next: dialFake}
			c := newTestClient(t, s, func(o *Options) { o.BaseURL = tt.base; o.Transport = rec })
			runners, err := c.ListRunners(context.Background(), "tarty-")
			if err != nil {
				t.Fatal(err)
			}
			if len(runners) != 1 {
				t.Fatalf("runners = %+v", runners)
			}
			urls := rec.URLs()
			if len(urls) != 1 || !strings.HasPrefix(urls[0], "GET "+tt.wantPrefix) {
				t.Fatalf("requests = %v, want one to %s", urls, tt.wantPrefix)
			}
		})
	}
}

func TestRateLimitRemainingAndCallback(t *testing.T) {
	s := newFake(t, fakegithub.Config{})
	var mu sync.Mutex
	var seen []int
	c := newTestClient(t, s, func(o *Options) {
		o.OnRateLimit = func(n int) { mu.Lock(); seen = append(seen, n); mu.Unlock() }
	})
	if got := c.RateLimitRemaining(); got != -1 {
		t.Fatalf("RateLimitRemaining before any call = %d, want -1", got)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.ListRunners(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	// The second list is a free 304: the budget is reported, unchanged.
	want := s.RateRemaining()
	if got := c.RateLimitRemaining(); got != want {
		t.Errorf("RateLimitRemaining = %d, want %d", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != want || seen[1] != want {
		t.Errorf("OnRateLimit saw %v, want [%d %d]", seen, want, want)
	}
}

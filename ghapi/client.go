package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v62/github"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// DefaultBaseURL is github.com's API.
const DefaultBaseURL = "https://api.github.com/"

const (
	defaultRunnerGroup = "Default"
	repoRunnerGroupID  = 1 // repositories have no groups; GitHub wants the default one
	workFolder         = "_work"
	perPage            = 100
	repoCacheTTL       = 10 * time.Minute
	groupCacheTTL      = 10 * time.Minute
	httpTimeout        = 60 * time.Second
	etagMaxEntries     = 8192 // six or so URLs per repository: 500 repositories fit
	etagMaxBytes       = 32 << 20
)

// Options configures a Client. Exactly one of Token and App is required, and
// Organization.
type Options struct {
	// BaseURL is the API root: DefaultBaseURL when empty; GitHub Enterprise
	// Server: https://HOST/api/v3/ (the /api/v3/ is added when missing).
	BaseURL string
	// Token is a personal access token (classic or fine-grained).
	Token string
	// App authenticates as a GitHub App installation instead of Token.
	App *App
	// Organization owns the runners and the repositories in scope.
	Organization string
	// Repository, when set ("app", or "org/app" with org = Organization),
	// makes the runners repository-level and limits polling to it.
	Repository string
	// RunnerGroup names the organisation runner group (default "Default").
	RunnerGroup string
	// Labels are the configured runner labels; the runner registers with
	// tarty.RunnerLabels(Labels).
	Labels []string
	// UserAgent, e.g. "tarty/1.2.3" (default "tarty").
	UserAgent string
	// Transport carries the HTTP requests (default http.DefaultTransport).
	Transport http.RoundTripper
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Sleep waits d or until ctx ends (default: a timer). Writes are spaced
	// with it; tests make it advance a simulated clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRateLimit receives X-RateLimit-Remaining from every answer that has
	// it. It may be called from several goroutines at once.
	OnRateLimit func(remaining int)
	// Logger gets debug lines; the zero value logs nothing.
	Logger zerolog.Logger
}

// App identifies a GitHub App installation.
type App struct {
	ID             int64
	InstallationID int64
	PrivateKey     []byte // PEM
}

// Client talks to GitHub for Tarty. It implements scheduler.Runners and
// scheduler.Jobs and is safe for concurrent use.
type Client struct {
	gh          *github.Client
	cache       *etagCache
	org         string
	repo        string // short name; "" = organisation scope
	groupName   string
	labels      []string
	now         func() time.Time
	onRateLimit func(int)
	log         zerolog.Logger
	remaining   atomic.Int64
	writes      *writeGate
	tune        pollTuning

	mu              sync.Mutex
	group           groupInfo // the resolved runner group (org scope)
	groupAt         time.Time
	access          *groupAccess // what the group can serve; nil = unknown
	accessAt        time.Time
	repos           []repoRef
	reposAt         time.Time
	reposSet        bool
	visibility      map[string]bool // lower-case full name -> private, from the last repository list
	secondaryUntil  time.Time
	secondaryStatus int

	pollMu sync.Mutex // one poll at a time
	polls  map[string]*repoPoll
}

type repoRef struct {
	owner, name string
	private     bool
}

func (r repoRef) fullName() string { return r.owner + "/" + r.name }

// New builds a Client. It makes no request.
func New(o Options) (*Client, error) {
	org := strings.TrimSpace(o.Organization)
	if org == "" {
		return nil, errors.New("github client: organization is required")
	}
	repo, err := tarty.RepositoryName(org, o.Repository)
	if err != nil {
		return nil, fmt.Errorf("github client: %w", err)
	}
	switch {
	case o.Token != "" && o.App != nil:
		return nil, errors.New("github client: set a token or an App, not both")
	case o.Token == "" && o.App == nil:
		return nil, errors.New("github client: a token or an App is required")
	case o.App != nil && (o.App.ID <= 0 || o.App.InstallationID <= 0 || len(o.App.PrivateKey) == 0):
		return nil, errors.New("github client: App needs an ID, an installation ID and a private key")
	}
	base, err := apiBase(o.BaseURL)
	if err != nil {
		return nil, err
	}

	transport := o.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	cache := newETagCache(transport, etagMaxEntries, etagMaxBytes)
	var gh *github.Client
	if o.App != nil {
		itr, err := ghinstallation.New(cache, o.App.ID, o.App.InstallationID, o.App.PrivateKey)
		if err != nil {
			// ghinstallation's message names the parse failure, never the key.
			return nil, fmt.Errorf("github client: App private key: %w", err)
		}
		itr.BaseURL = strings.TrimSuffix(base.String(), "/")
		gh = github.NewClient(&http.Client{Transport: itr, Timeout: httpTimeout})
	} else {
		gh = github.NewClient(&http.Client{Transport: cache, Timeout: httpTimeout}).WithAuthToken(o.Token)
	}
	if base.String() != DefaultBaseURL {
		if gh, err = gh.WithEnterpriseURLs(base.String(), base.String()); err != nil {
			return nil, fmt.Errorf("github client: base URL: %w", err)
		}
	}
	gh.UserAgent = o.UserAgent
	if gh.UserAgent == "" {
		gh.UserAgent = "tarty"
	}

	c := &Client{
		gh:          gh,
		cache:       cache,
		org:         org,
		repo:        repo,
		groupName:   strings.TrimSpace(o.RunnerGroup),
		labels:      tarty.RunnerLabels(o.Labels),
		now:         o.Clock,
		onRateLimit: o.OnRateLimit,
		log:         o.Logger,
	}
	if c.groupName == "" {
		c.groupName = defaultRunnerGroup
	}
	if c.now == nil {
		c.now = time.Now
	}
	sleep := o.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	c.writes = newWriteGate(writeGap, c.now, sleep)
	c.tune = defaultPollTuning
	c.polls = map[string]*repoPoll{}
	c.remaining.Store(-1)
	return c, nil
}

// apiBase parses the base URL and gives it a trailing slash. The API base of
// an Enterprise server gets /api/v3/ from WithEnterpriseURLs later; here it is
// added too so ghinstallation's token URL matches.
func apiBase(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		s = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("github client: base URL %q: want http(s)://HOST/ or https://HOST/api/v3/", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("github client: base URL %q: no credentials, query or fragment allowed", u.Redacted())
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if !strings.HasSuffix(u.Path, "/api/v3/") && !strings.HasPrefix(u.Host, "api.") && !strings.Contains(u.Host, ".api.") {
		u.Path += "api/v3/"
	}
	return u, nil
}

// Labels are the labels runners register with.
func (c *Client) Labels() []string { return append([]string(nil), c.labels...) }

// RateLimitRemaining is the last X-RateLimit-Remaining seen, -1 before any.
func (c *Client) RateLimitRemaining() int { return int(c.remaining.Load()) }

// observe records the rate-limit budget an answer reports.
func (c *Client) observe(resp *github.Response) {
	if resp == nil || resp.Response == nil || resp.Header.Get("X-RateLimit-Remaining") == "" {
		return
	}
	c.remaining.Store(int64(resp.Rate.Remaining))
	if c.onRateLimit != nil {
		c.onRateLimit(resp.Rate.Remaining)
	}
}

// check observes resp and classifies err for op.
func (c *Client) check(op string, resp *github.Response, err error, k kind) error {
	c.observe(resp)
	err = classify(op, err, k, c.now())
	c.noteSecondary(err)
	return err
}

// statusOf returns the HTTP status of a classified error, 0 if none.
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

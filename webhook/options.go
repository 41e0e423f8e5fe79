package webhook

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
)

// Defaults for the zero values of Options.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultPath           = "/github/webhook"
	DefaultEnqueueTimeout = time.Second
	DefaultDedupeSize     = 10000
	DefaultDedupeTTL      = 72 * time.Hour // GitHub lets a delivery be redelivered for 3 days
	// DefaultReadHeaderTimeout is well below DefaultShutdownTimeout, so a
	// connection that never sends a request is closed by the server before a
	// graceful shutdown has to give up waiting for it.
	DefaultReadHeaderTimeout = 2 * time.Second
	DefaultReadTimeout       = 10 * time.Second // GitHub gives up after 10 s anyway
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 5 * time.Second
	// DefaultMaxConcurrentReads bounds the bodies read at once: before the
	// signature is checked, a body is an anonymous client's memory.
	DefaultMaxConcurrentReads = 16
	// DefaultReadSlotTimeout is how long a request waits for a read slot before
	// it is answered 503.
	DefaultReadSlotTimeout = time.Second

	// MaxBodyBytes is the largest body accepted; workflow_job payloads are 8-14 KB.
	MaxBodyBytes = 5 << 20
	// maxDeliveryIDLen bounds what one remembered delivery ID may cost; GitHub's are
	// 36-character GUIDs.
	maxDeliveryIDLen = 256
	maxHeaderBytes   = 64 << 10
	// initialBodyBuf is the most a declared Content-Length may reserve before
	// the bytes arrive; a larger body grows its buffer as it is read.
	initialBodyBuf = 16 << 10
)

// Options configure a Server. Secret, Organization and Events are required; every
// other zero value means the default above.
type Options struct {
	Listen string // server.listen
	Path   string // server.webhook_path

	// Secret is the webhook secret; New refuses an empty one (go-github and GitHub
	// both skip signing without it, so anyone could then inject jobs).
	Secret []byte
	// Organization is github.organization; deliveries for other owners are ignored.
	Organization string
	// Repository is github.repository: "" (every repository of the organisation),
	// "app" or "org/app".
	Repository string
	// Matcher decides which runs-on label sets are Tarty's demand.
	Matcher tarty.LabelMatcher
	// RunnerPrefix is runners.name_prefix. in_progress and completed events of
	// a runner named <RunnerPrefix>-... are forwarded whatever the job's labels:
	// GitHub may hand an idle Tarty runner a job Tarty would not launch for
	// (runs-on: self-hosted), and the scheduler must learn that runner is busy.
	RunnerPrefix string
	// Serves reports whether the runner group can serve a repository (owner/name
	// as GitHub spells it): GitHub never hands a job of a public repository to a
	// group that does not allow public ones, nor one of a repository outside a
	// "selected" group. queued and waiting events of a repository it refuses
	// are answered 202, counted as ignored_runner_group and not forwarded. It
	// is called inline, so it must be a cached lookup that never waits on
	// GitHub (the GitHub client provides one). nil means every repository.
	Serves func(repository string) bool
	// Events receives the accepted job events (the scheduler's queue). Its owner
	// keeps it open until Run has returned.
	Events chan<- tarty.JobEvent
	// EnqueueTimeout is how long a delivery may wait for room on Events before it
	// is answered 503.
	EnqueueTimeout time.Duration

	// Registerer gets tarty_webhook_deliveries_total; nil means a private registry
	// (never the global one).
	Registerer prometheus.Registerer
	// Logger is zerolog.Nop() when zero.
	Logger zerolog.Logger

	// DedupeSize and DedupeTTL bound the memory of delivery IDs.
	DedupeSize int
	DedupeTTL  time.Duration
	// Now is the clock for the delivery memory, the stale-job rule
	// (tarty.StaleAfter) and the refusal log's once-a-minute limit; time.Now
	// when nil.
	Now func() time.Time

	// MaxConcurrentReads bounds how many request bodies are read at once; a
	// request that gets no read slot within ReadSlotTimeout is answered 503
	// before its body is read. A request holds no slot until its first body
	// bytes arrive, so connections that only send headers cost no buffer.
	MaxConcurrentReads int
	ReadSlotTimeout    time.Duration

	// HTTP server timeouts: a slow client cannot hold a connection open.
	// ReadHeaderTimeout also closes connections that never send a request;
	// keep it below ShutdownTimeout.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds the graceful shutdown once Run's context is done.
	// Connections still open then are closed; Run reports an error only when
	// an authenticated delivery was still being handled.
	ShutdownTimeout time.Duration
}

// normalize fills defaults and checks the options. It returns the repository
// scope as a lower-case "org/app", or "" for the whole organisation.
func (o *Options) normalize() (repoFullName string, err error) {
	var errs []error
	if len(o.Secret) == 0 {
		errs = append(errs, errors.New("webhook secret is required"))
	}
	o.Organization = strings.TrimSpace(o.Organization)
	if o.Organization == "" || strings.Contains(o.Organization, "/") {
		errs = append(errs, fmt.Errorf("organization %q: want a GitHub login", o.Organization))
	}
	if o.Events == nil {
		errs = append(errs, errors.New("events channel is required"))
	}
	if name, err := tarty.RepositoryName(o.Organization, o.Repository); err != nil {
		errs = append(errs, err)
	} else if name != "" {
		repoFullName = strings.ToLower(o.Organization + "/" + name)
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if !strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, ":*?#") {
		errs = append(errs, fmt.Errorf("webhook path %q: want an absolute path without : * ? #", o.Path))
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	setDefault(&o.EnqueueTimeout, DefaultEnqueueTimeout)
	setDefault(&o.DedupeTTL, DefaultDedupeTTL)
	setDefault(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.ShutdownTimeout, DefaultShutdownTimeout)
	setDefault(&o.ReadSlotTimeout, DefaultReadSlotTimeout)
	if o.MaxConcurrentReads <= 0 {
		o.MaxConcurrentReads = DefaultMaxConcurrentReads
	}
	if o.DedupeSize <= 0 {
		o.DedupeSize = DefaultDedupeSize
	}
	return repoFullName, errors.Join(errs...)
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

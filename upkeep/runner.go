package upkeep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/scheduler"
)

// Scheduler is what the upkeep needs of the scheduler (*scheduler.Scheduler).
type Scheduler interface {
	Status(ctx context.Context) (scheduler.Status, error)
	Rebuild(ctx context.Context) error
	SetRunnerStatus(scheduler.RunnerStatus)
}

// RunnerSource is what the version guard asks GitHub (*ghapi.Client).
type RunnerSource interface {
	// RunnerReleases lists actions/runner's releases, newest first.
	RunnerReleases(ctx context.Context) ([]ghapi.RunnerRelease, error)
	// OfferedRunnerVersion is the macOS arm64 runner the server offers.
	OfferedRunnerVersion(ctx context.Context) (string, error)
	// EnterpriseVersion is the GitHub Enterprise Server's version, "" on github.com.
	EnterpriseVersion(ctx context.Context) (string, error)
}

// Defaults of the guard's timing.
const (
	DefaultRecheck     = time.Hour        // the age grows with time: look again this often
	DefaultQuietPoll   = time.Minute      // while an early rebuild waits for no queued jobs
	DefaultReleasesTTL = 24 * time.Hour   // GitHub's answer is kept this long
	DefaultRetryLatest = time.Hour        // after a failed look at GitHub
	EarlyRebuildGap    = 24 * time.Hour   // at most one early rebuild in this time
	NightlySoon        = time.Hour        // a nightly rebuild this close does the job itself
	githubCallTimeout  = 30 * time.Second // each call to GitHub
	WarnBehind         = 20 * 24 * time.Hour
	FailBehind         = 30 * 24 * time.Hour // GitHub stops sending jobs to such a runner
)

// Latest is what GitHub says of the newest runner.
type Latest struct {
	// Enterprise is the GitHub Enterprise Server's version; "" on github.com.
	Enterprise string
	// Releases of actions/runner, newest first (github.com only), and why
	// they could not be read.
	Releases    []ghapi.RunnerRelease
	ReleasesErr error
	// Offered is the runner the server hands out (the downloads endpoint).
	Offered    string
	OfferedErr error
	FetchedAt  time.Time
}

// FetchLatest asks GitHub for the newest runner: on github.com the releases
// of actions/runner (with their dates) and the offered runner; on GitHub
// Enterprise Server only the runner the server offers (actions/runner's
// releases are github.com's; the server asks for the runner it bundles).
func FetchLatest(ctx context.Context, src RunnerSource, now time.Time) Latest {
	l := Latest{FetchedAt: now}
	call := func(f func(context.Context)) { // each with its own timeout
		cctx, cancel := context.WithTimeout(ctx, githubCallTimeout)
		defer cancel()
		f(cctx)
	}
	var entErr error
	call(func(ctx context.Context) { l.Enterprise, entErr = src.EnterpriseVersion(ctx) })
	call(func(ctx context.Context) { l.Offered, l.OfferedErr = src.OfferedRunnerVersion(ctx) })
	if l.Enterprise == "" {
		call(func(ctx context.Context) { l.Releases, l.ReleasesErr = src.RunnerReleases(ctx) })
		if l.ReleasesErr == nil && len(l.Releases) == 0 {
			l.ReleasesErr = errors.New("no releases listed")
		}
	}
	if entErr != nil && l.ReleasesErr != nil && l.OfferedErr != nil {
		l.ReleasesErr = fmt.Errorf("%w (and the server's version: %v)", l.ReleasesErr, entErr)
	}
	return l
}

// failed reports whether nothing useful came back.
func (l Latest) failed() bool {
	return l.OfferedErr != nil && (l.Enterprise != "" || l.ReleasesErr != nil)
}

// Assessment is how the image's runner compares with the newest.
type Assessment struct {
	ImageVersion string
	Latest       string
	Behind       bool
	// Since is when the image's runner fell behind: the publication of the
	// first release newer than it, or, when release dates are unknown (GitHub
	// Enterprise Server, the releases API failing), when Tarty first saw it
	// behind. Zero when not behind.
	Since      time.Time
	BehindDays float64 // since Since, to a tenth of a day
	Note       string  // what is unknown, and why
}

// Age is how long the image's runner has been behind.
func (a Assessment) Age(now time.Time) time.Duration {
	if !a.Behind || a.Since.IsZero() || now.Before(a.Since) {
		return 0
	}
	return now.Sub(a.Since)
}

// Assess compares the image's runner with the newest (a pure function).
// img.BehindSince, when set, is when Tarty first saw it behind: the age's
// start when no release date tells it.
func Assess(now time.Time, img ImageRunner, l Latest) Assessment {
	a := Assessment{ImageVersion: img.Version}
	datesKnown := false
	var notes []string
	switch {
	case l.Enterprise != "":
		if l.OfferedErr == nil {
			a.Latest = l.Offered
			notes = append(notes, fmt.Sprintf("GitHub Enterprise Server %s offers runner %s", l.Enterprise, l.Offered))
		}
	case l.ReleasesErr == nil && len(l.Releases) > 0:
		a.Latest, datesKnown = l.Releases[0].Version, true
		if l.OfferedErr == nil && ghapi.CompareRunnerVersions(l.Offered, a.Latest) > 0 {
			a.Latest = l.Offered
		}
	case l.OfferedErr == nil:
		a.Latest = l.Offered
		notes = append(notes, fmt.Sprintf("the releases of actions/runner could not be read (%s): the latest is the runner GitHub offers", oneLine(l.ReleasesErr)))
	}
	if a.Latest == "" {
		var why []string
		if l.Enterprise == "" && l.ReleasesErr != nil {
			why = append(why, "releases: "+oneLine(l.ReleasesErr))
		}
		if l.OfferedErr != nil {
			why = append(why, "runner downloads: "+oneLine(l.OfferedErr))
		}
		a.Note = "the latest actions runner is unknown (" + strings.Join(why, "; ") + ")"
		if img.Version == "" {
			a.Note += "; " + unknownImage
		}
		return a
	}
	if img.Version == "" {
		a.Note = unknownImage
		return a
	}
	if ghapi.CompareRunnerVersions(img.Version, a.Latest) >= 0 {
		a.Note = strings.Join(notes, "; ")
		return a
	}
	a.Behind = true
	if datesKnown {
		for _, r := range l.Releases { // newest first: the last newer one is the first published
			if ghapi.CompareRunnerVersions(r.Version, img.Version) > 0 {
				a.Since = r.PublishedAt
			}
		}
	}
	if a.Since.IsZero() {
		a.Since = img.BehindSince
		if a.Since.IsZero() {
			a.Since = now
		}
		notes = append(notes, "its age counts from when Tarty first saw the image behind it ("+a.Since.UTC().Format(time.DateOnly)+")")
	}
	a.BehindDays = math.Round(a.Age(now).Hours()/24*10) / 10
	a.Note = strings.Join(notes, "; ")
	return a
}

const unknownImage = "the runner image's actions runner version is not known yet: Tarty reads it in the first runner VM and after each rebuild"

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	Image     string // images.runner
	GitHub    RunnerSource
	Scheduler Scheduler
	Store     *Store
	// MaxAge is rebuild.runner_max_age: behind longer than this, with the
	// nightly rebuild enabled, the guard asks for a rebuild at the next
	// quiet moment (no queued jobs), at most once in EarlyRebuildGap.
	MaxAge         time.Duration
	RebuildEnabled bool
	Metrics        *Metrics
	Logger         zerolog.Logger
	Now            func() time.Time

	Recheck     time.Duration // default DefaultRecheck
	QuietPoll   time.Duration // default DefaultQuietPoll
	ReleasesTTL time.Duration // default DefaultReleasesTTL
	RetryLatest time.Duration // default DefaultRetryLatest
}

// Guard watches the actions runner baked into the runner image: it learns
// the image's version from the scheduler (ObserveVersion), the newest from
// GitHub (cached for a day), reports the gap (/status, metrics), and asks
// for an early rebuild when the runner is too old.
type Guard struct {
	o    GuardOptions
	log  zerolog.Logger
	wake chan struct{}

	mu        sync.Mutex // one Check at a time
	latest    Latest
	haveGood  bool      // latest holds a useful answer
	nextFetch time.Time // when to ask GitHub again
	warnedAt  time.Time // the last warning that the runner is old (one a day)
}

// NewGuard builds a Guard; it starts nothing.
func NewGuard(o GuardOptions) *Guard {
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.Recheck, DefaultRecheck)
	setDefault(&o.QuietPoll, DefaultQuietPoll)
	setDefault(&o.ReleasesTTL, DefaultReleasesTTL)
	setDefault(&o.RetryLatest, DefaultRetryLatest)
	return &Guard{o: o, log: o.Logger.With().Str("component", "runner-version").Logger(), wake: make(chan struct{}, 1)}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// ObserveVersion records the runner version found in image (the
// scheduler's OnRunnerVersion): persisted, so a restart knows it before the
// first VM, and checked at once. Safe from any goroutine; it never blocks
// on the guard.
func (g *Guard) ObserveVersion(image, version string) {
	if err := g.o.Store.setImageVersion(image, version, g.o.Now()); err != nil {
		g.log.Warn().Err(err).Msg("recording the runner image's version")
	}
	g.log.Info().Str("image", image).Str("runner_version", version).Msg("actions runner in the image")
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Run checks at once, then whenever a version is observed, every Recheck,
// and every QuietPoll while an early rebuild waits for a quiet moment, until
// ctx ends.
func (g *Guard) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-g.wake:
		}
		t.Reset(g.Check(ctx))
	}
}

// Check assesses the image's runner now, publishes it (SetRunnerStatus,
// metrics), asks for an early rebuild when due and quiet, and returns when
// to check again.
func (g *Guard) Check(ctx context.Context) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.o.Now()
	if !now.Before(g.nextFetch) {
		l := FetchLatest(ctx, g.o.GitHub, now)
		switch {
		case !l.failed():
			g.latest, g.haveGood, g.nextFetch = l, true, now.Add(g.o.ReleasesTTL)
			if l.Enterprise == "" && l.ReleasesErr != nil {
				g.nextFetch = now.Add(g.o.RetryLatest) // the dates are worth another try
			}
		case g.haveGood: // keep yesterday's answer rather than none
			g.nextFetch = now.Add(g.o.RetryLatest)
			g.log.Warn().Err(errors.Join(l.ReleasesErr, l.OfferedErr)).Msg("asking GitHub for the latest actions runner; keeping the last answer")
		default:
			g.latest, g.nextFetch = l, now.Add(g.o.RetryLatest)
		}
	}
	img, _ := g.o.Store.ImageRunner(g.o.Image)
	a := Assess(now, img, g.latest)
	since := time.Time{}
	if a.Behind {
		since = img.BehindSince
		if since.IsZero() {
			since = now
		}
	}
	if img.Version != "" {
		if err := g.o.Store.setBehindSince(g.o.Image, since); err != nil {
			g.log.Warn().Err(err).Msg("recording when the runner fell behind")
		}
	}

	next := g.o.Recheck
	rebuildNote, wait := g.maybeRebuild(ctx, now, img, a)
	if wait {
		next = g.o.QuietPoll
	}
	note := joinNotes(a.Note, rebuildNote)
	checked := now
	g.o.Scheduler.SetRunnerStatus(scheduler.RunnerStatus{ImageVersion: a.ImageVersion, Latest: a.Latest,
		BehindDays: a.BehindDays, Note: note, CheckedAt: &checked})
	g.o.Metrics.setRunner(g.o.Image, a.ImageVersion, a.Latest, a.BehindDays)
	if a.Behind && a.Age(now) >= WarnBehind && (g.warnedAt.IsZero() || now.Sub(g.warnedAt) >= 24*time.Hour) {
		g.warnedAt = now
		g.log.Warn().Str("runner_version", a.ImageVersion).Str("latest", a.Latest).Float64("behind_days", a.BehindDays).
			Msg("the runner image's actions runner is old: GitHub stops sending jobs to a runner 30 days behind; rebuild the image (rebuild.command must install the newest runner)")
	}
	return next
}

func joinNotes(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// maybeRebuild asks for an early rebuild when the runner is older than
// MaxAge, the nightly rebuild is enabled and not imminent, none was asked
// for in EarlyRebuildGap, and no job is queued. wait is true while it waits
// for such a moment (check again soon); note says what it did or waits for.
func (g *Guard) maybeRebuild(ctx context.Context, now time.Time, img ImageRunner, a Assessment) (note string, wait bool) {
	last, from := g.o.Store.earlyRebuild()
	if !last.IsZero() && from == img.Version && img.LearntAt.After(last) && a.Behind {
		note = "the rebuild of " + last.Local().Format(time.DateTime) + " did not update the runner: rebuild.command must install the newest actions runner"
	}
	if !g.o.RebuildEnabled || !a.Behind || a.Age(now) < g.o.MaxAge {
		return note, false
	}
	if !last.IsZero() && now.Sub(last) < EarlyRebuildGap {
		return note, false
	}
	st, err := g.o.Scheduler.Status(ctx)
	if err != nil {
		g.log.Debug().Err(err).Msg("scheduler status for an early rebuild")
		return note, true
	}
	switch {
	case st.Rebuild.State == "disabled" || strings.HasPrefix(st.Rebuild.State, "not available"):
		return note, false
	case st.Rebuild.State != "idle":
		return joinNotes(note, "a rebuild is under way"), true
	case st.Rebuild.NextAt != nil && st.Rebuild.NextAt.Sub(now) <= NightlySoon:
		return note, false // the nightly rebuild is about to run
	case len(st.Queued) > 0:
		return joinNotes(note, fmt.Sprintf("an early rebuild waits for no queued jobs (%d now)", len(st.Queued))), true
	}
	if err := g.o.Scheduler.Rebuild(ctx); err != nil {
		g.log.Warn().Err(err).Msg("asking for an early rebuild")
		return note, true
	}
	if err := g.o.Store.setEarlyRebuild(now, img.Version); err != nil {
		g.log.Warn().Err(err).Msg("recording the early rebuild")
	}
	g.o.Metrics.earlyRebuild()
	g.log.Info().Str("runner_version", img.Version).Str("latest", a.Latest).Float64("behind_days", a.BehindDays).
		Dur("runner_max_age", g.o.MaxAge).Msg("the runner image's actions runner is too old: rebuilding now, while no job is queued")
	return joinNotes(note, "rebuilding early, at "+now.Local().Format(time.DateTime)), false
}

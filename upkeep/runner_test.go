package upkeep

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/scheduler"
)

const days = 24 * time.Hour

func TestAssess(t *testing.T) {
	good := Latest{Releases: testReleases(), Offered: "2.337.0"}
	noReleases := Latest{ReleasesErr: errDown, Offered: "2.337.0"}
	ghes := Latest{Enterprise: "3.14.2", Releases: testReleases(), Offered: "2.317.0"}
	tests := []struct {
		name       string
		img        ImageRunner
		l          Latest
		latest     string
		behind     bool
		behindDays float64
		note       string // a substring; "" = no note
	}{
		{"current", ImageRunner{Version: "2.337.0"}, good, "2.337.0", false, 0, ""},
		{"current, releases API down", ImageRunner{Version: "2.337.0"}, noReleases, "2.337.0", false, 0, "could not be read"},
		{"newer than the latest", ImageRunner{Version: "2.338.1"}, good, "2.337.0", false, 0, ""},
		{"one release behind", ImageRunner{Version: "2.336.0"}, good, "2.337.0", true, 10, ""},
		{"dated by the first newer release", ImageRunner{Version: "2.334.9"}, good, "2.337.0", true, 40, ""},
		{"image unknown", ImageRunner{}, good, "2.337.0", false, 0, "not known yet"},
		{"offered newer than any release", ImageRunner{Version: "2.337.0"}, Latest{Releases: testReleases(), Offered: "2.338.0"}, "2.338.0", true, 0, "first saw"},
		{"releases API down: offered, first seen now", ImageRunner{Version: "2.336.0"}, noReleases, "2.337.0", true, 0, "could not be read"},
		{"releases API down: first seen 5 days ago", ImageRunner{Version: "2.336.0", BehindSince: day0.Add(-5 * days)}, noReleases, "2.337.0", true, 5, "first saw"},
		{"nothing known", ImageRunner{Version: "2.336.0"}, Latest{ReleasesErr: errDown, OfferedErr: errors.New("403")}, "", false, 0, "latest actions runner is unknown (releases: 502 Bad Gateway; runner downloads: 403)"},
		{"GHES: the server's runner", ImageRunner{Version: "2.316.0", BehindSince: day0.Add(-3 * days)}, ghes, "2.317.0", true, 3, "Enterprise Server 3.14.2 offers runner 2.317.0"},
		{"GHES: newer than the server asks", ImageRunner{Version: "2.337.0"}, ghes, "2.317.0", false, 0, "offers runner 2.317.0"},
		{"GHES: downloads refused", ImageRunner{Version: "2.316.0"}, Latest{Enterprise: "3.14.2", OfferedErr: errors.New("403")}, "", false, 0, "runner downloads: 403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assess(day0, tt.img, tt.l)
			if a.Latest != tt.latest || a.Behind != tt.behind || a.BehindDays != tt.behindDays || a.ImageVersion != tt.img.Version {
				t.Errorf("got %+v", a)
			}
			if (tt.note == "") != (a.Note == "") || !strings.Contains(a.Note, tt.note) {
				t.Errorf("note %q, want %q", a.Note, tt.note)
			}
		})
	}
}

type guardFixture struct {
	clk   *clock
	store *Store
	src   *fakeSource
	sched *fakeScheduler
	reg   *prometheus.Registry
	met   *Metrics
	logs  *logBuf
	o     GuardOptions
}

func newGuardFixture(t *testing.T, version string) *guardFixture {
	t.Helper()
	f := &guardFixture{clk: newClock(day0), store: newStore(t, t.TempDir()), sched: newFakeScheduler(),
		src: &fakeSource{releases: testReleases(), offered: "2.337.0"}, reg: prometheus.NewRegistry(), logs: &logBuf{}}
	var err error
	if f.met, err = NewMetrics(f.reg); err != nil {
		t.Fatal(err)
	}
	if version != "" {
		if err := f.store.setImageVersion("tarty-runner", version, day0.Add(-30*days)); err != nil {
			t.Fatal(err)
		}
	}
	f.o = GuardOptions{Image: "tarty-runner", GitHub: f.src, Scheduler: f.sched, Store: f.store,
		MaxAge: 21 * days, RebuildEnabled: true, Metrics: f.met, Logger: f.logs.logger(), Now: f.clk.Now}
	return f
}

func (f *guardFixture) guard() *Guard { return NewGuard(f.o) }

func TestGuardEarlyRebuildAtAQuietMoment(t *testing.T) {
	f := newGuardFixture(t, "2.335.0") // behind since 2.336.0, 25 days ago
	f.sched.setQueued(2)
	g := f.guard()
	ctx := context.Background()

	if next := g.Check(ctx); next != DefaultQuietPoll || f.sched.rebuildCount() != 0 {
		t.Fatalf("with queued jobs: next %s, rebuilds %d", next, f.sched.rebuildCount())
	}
	st := f.sched.last()
	if st.ImageVersion != "2.335.0" || st.Latest != "2.337.0" || st.BehindDays != 25 || st.CheckedAt == nil ||
		!strings.Contains(st.Note, "waits for no queued jobs (2 now)") {
		t.Errorf("status %+v", st)
	}

	f.sched.setQueued(0)
	f.clk.Advance(time.Minute)
	if next := g.Check(ctx); next != DefaultRecheck || f.sched.rebuildCount() != 1 {
		t.Fatalf("quiet: next %s, rebuilds %d", next, f.sched.rebuildCount())
	}
	if f.logs.count("rebuilding now") != 1 || testutil.ToFloat64(f.met.earlyRebuilds) != 1 || f.logs.count("the runner image's actions runner is old") != 1 {
		t.Errorf("log %s", f.logs.String())
	}

	// The rebuild promoted an image with the same old runner.
	f.clk.Advance(2 * time.Hour)
	g.ObserveVersion("tarty-runner", "2.335.0")
	g.Check(ctx)
	if f.sched.rebuildCount() != 1 {
		t.Errorf("a second early rebuild the same day")
	}
	if st := f.sched.last(); !strings.Contains(st.Note, "did not update the runner: rebuild.command must install the newest actions runner") {
		t.Errorf("note %q", st.Note)
	}

	// A restart the same day remembers; a day after the first, it is asked again.
	g2 := f.guard()
	f.clk.Advance(20 * time.Hour)
	g2.Check(ctx)
	if f.sched.rebuildCount() != 1 {
		t.Errorf("after a restart the same day: %d rebuilds", f.sched.rebuildCount())
	}
	f.clk.Advance(2 * time.Hour) // 24h01m after the first
	g2.Check(ctx)
	if f.sched.rebuildCount() != 2 {
		t.Errorf("a day later: %d rebuilds", f.sched.rebuildCount())
	}

	// The new image has the newest runner: current, nothing more to do.
	g2.ObserveVersion("tarty-runner", "2.337.0")
	f.clk.Advance(25 * time.Hour)
	g2.Check(ctx)
	if st := f.sched.last(); st.BehindDays != 0 || st.ImageVersion != "2.337.0" || st.Note != "" || f.sched.rebuildCount() != 2 {
		t.Errorf("current: %+v, %d rebuilds", st, f.sched.rebuildCount())
	}
	if v := testutil.ToFloat64(f.met.info.WithLabelValues("tarty-runner", "2.337.0", "2.337.0")); v != 1 {
		t.Errorf("info metric %v", v)
	}
	if v := testutil.ToFloat64(f.met.behindDays); v != 0 {
		t.Errorf("behind metric %v", v)
	}
}

func TestGuardNoEarlyRebuild(t *testing.T) {
	tests := []struct {
		name    string
		version string
		mutate  func(*guardFixture)
		wait    bool
	}{
		{"younger than runner_max_age", "2.336.0", nil, false},
		{"rebuild disabled in the config", "2.335.0", func(f *guardFixture) { f.o.RebuildEnabled = false }, false},
		{"nightly rebuild disabled", "2.335.0", func(f *guardFixture) { f.sched.status.Rebuild.State = "disabled" }, false},
		{"nightly within the hour", "2.335.0", func(f *guardFixture) {
			next := day0.Add(40 * time.Minute)
			f.sched.status.Rebuild.NextAt = &next
		}, false},
		{"a rebuild under way", "2.335.0", func(f *guardFixture) { f.sched.status.Rebuild.State = "building" }, true},
		{"scheduler not running", "2.335.0", func(f *guardFixture) { f.sched.statErr = scheduler.ErrNotRunning }, true},
		{"refused", "2.335.0", func(f *guardFixture) { f.sched.refuse = scheduler.Refusal("the scheduler is shutting down") }, true},
		{"version unknown", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGuardFixture(t, tt.version)
			if tt.mutate != nil {
				tt.mutate(f)
			}
			next := f.guard().Check(context.Background())
			if f.sched.rebuildCount() != 0 {
				t.Errorf("rebuilt")
			}
			if (next == DefaultQuietPoll) != tt.wait {
				t.Errorf("next check in %s", next)
			}
			if at, _ := f.store.earlyRebuild(); !at.IsZero() {
				t.Errorf("an early rebuild was recorded")
			}
		})
	}
}

func TestGuardAsksGitHubOnceADayAndDegrades(t *testing.T) {
	f := newGuardFixture(t, "2.336.0")
	f.src.releasesErr = errDown
	g := f.guard()
	ctx := context.Background()

	// The releases API fails: the offered runner is the latest, the age
	// counts from now, and the releases are asked again in an hour.
	g.Check(ctx)
	st := f.sched.last()
	if st.Latest != "2.337.0" || st.BehindDays != 0 || !strings.Contains(st.Note, "could not be read (502 Bad Gateway)") {
		t.Errorf("releases down: %+v", st)
	}
	f.clk.Advance(30 * time.Minute)
	g.Check(ctx)
	if n := f.src.releaseCalls(); n != 1 {
		t.Errorf("%d release calls within the hour", n)
	}
	f.src.set(func(s *fakeSource) { s.releasesErr = nil })
	f.clk.Advance(31 * time.Minute)
	g.Check(ctx)
	if st := f.sched.last(); st.BehindDays != 10 || st.Note != "" || f.src.releaseCalls() != 2 {
		t.Errorf("releases back: %+v, %d calls", st, f.src.releaseCalls())
	}

	// Cached for a day.
	for range 5 {
		f.clk.Advance(4 * time.Hour)
		g.Check(ctx)
	}
	if n := f.src.releaseCalls(); n != 2 {
		t.Errorf("%d release calls in 20 hours", n)
	}
	// GitHub unreachable: yesterday's answer is kept.
	f.src.set(func(s *fakeSource) { s.releasesErr, s.offeredErr = errDown, errDown })
	f.clk.Advance(5 * time.Hour)
	g.Check(ctx)
	if st := f.sched.last(); st.Latest != "2.337.0" || st.BehindDays != 11.1 || f.src.releaseCalls() != 3 {
		t.Errorf("GitHub down, cached answer: %+v", st)
	}
	if f.logs.count("keeping the last answer") != 1 {
		t.Errorf("log: %s", f.logs.String())
	}

	// Never an answer: the status says why, and nothing is behind.
	f2 := newGuardFixture(t, "2.336.0")
	f2.src.releasesErr, f2.src.offeredErr = errDown, errors.New("403 Forbidden")
	f2.guard().Check(ctx)
	if st := f2.sched.last(); st.Latest != "" || st.BehindDays != 0 || !strings.Contains(st.Note, "latest actions runner is unknown") {
		t.Errorf("never an answer: %+v", st)
	}
	if v := testutil.ToFloat64(f2.met.info.WithLabelValues("tarty-runner", "2.336.0", "unknown")); v != 1 {
		t.Errorf("info metric %v", v)
	}
}

// The guard against the fake GitHub through the real client: github.com
// (releases with dates) and GitHub Enterprise Server (the runner the server
// offers, no releases asked; age from when Tarty first saw it behind).
func TestGuardAgainstFakeGitHub(t *testing.T) {
	for _, ghes := range []bool{false, true} {
		name := "github.com"
		if ghes {
			name = "GHES"
		}
		t.Run(name, func(t *testing.T) {
			f := newGuardFixture(t, "2.316.0")
			cfg := fakegithub.Config{Now: f.clk.Now}
			if ghes {
				cfg.EnterpriseVersion = "3.14.2"
			}
			gh := fakegithub.New(cfg)
			t.Cleanup(gh.Close)
			gh.SetRunnerReleases(
				fakegithub.RunnerRelease{Version: "2.316.0", PublishedAt: day0.Add(-60 * days)},
				fakegithub.RunnerRelease{Version: "2.317.0", PublishedAt: day0.Add(-50 * days)},
				fakegithub.RunnerRelease{Version: "2.337.0", PublishedAt: day0.Add(-10 * days)},
			)
			gh.SetOfferedRunnerVersion("2.317.0")
			base := gh.URL()
			if ghes {
				base = gh.EnterpriseURL()
			}
			c, err := ghapi.New(ghapi.Options{BaseURL: base, Token: gh.Token(), Organization: gh.Organization(),
				Labels: []string{"tarty"}, Clock: f.clk.Now, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			f.o.GitHub = c
			g := f.guard()
			ctx := context.Background()
			g.Check(ctx)
			st := f.sched.last()
			if !ghes {
				if st.Latest != "2.337.0" || st.BehindDays != 50 || !strings.HasPrefix(st.Note, "rebuilding early") || f.sched.rebuildCount() != 1 {
					t.Errorf("github.com: %+v, %d rebuilds", st, f.sched.rebuildCount())
				}
				return
			}
			if st.Latest != "2.317.0" || st.BehindDays != 0 || !strings.Contains(st.Note, "GitHub Enterprise Server 3.14.2 offers runner 2.317.0") {
				t.Errorf("GHES: %+v", st)
			}
			if n := gh.Calls("GET", "/repos/actions/runner/releases"); n != 0 {
				t.Errorf("GHES: asked for github.com's releases %d times", n)
			}
			// Three weeks later (the server's answer is asked again daily),
			// the image is old enough for an early rebuild.
			for range 21 {
				f.clk.Advance(days)
				g.Check(ctx)
			}
			if st := f.sched.last(); st.BehindDays != 21 || f.sched.rebuildCount() != 1 {
				t.Errorf("GHES after 21 days: %+v, %d rebuilds", st, f.sched.rebuildCount())
			}
			if n := gh.Calls("GET", "/orgs/acme/actions/runners/downloads"); n != 22 {
				t.Errorf("GHES: %d downloads calls in 22 daily checks", n)
			}
		})
	}
}

// Run checks at start, when a version is observed, and every hour (in a
// synctest bubble: simulated time).
func TestGuardRun(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		store, err := OpenStore(dir+"/"+StateFile, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		sched := newFakeScheduler()
		src := &fakeSource{releases: testReleases(), offered: "2.337.0"}
		g := NewGuard(GuardOptions{Image: "tarty-runner", GitHub: src, Scheduler: sched, Store: store,
			MaxAge: 21 * days, RebuildEnabled: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()

		synctest.Wait()
		if st := sched.last(); st.ImageVersion != "" || !strings.Contains(st.Note, "not known yet") || sched.checks() != 1 {
			t.Errorf("at start: %+v", st)
		}
		g.ObserveVersion("tarty-runner", "2.336.0")
		synctest.Wait()
		if st := sched.last(); st.ImageVersion != "2.336.0" || st.Latest != "2.337.0" || sched.checks() != 2 {
			t.Errorf("after the version: %+v", st)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if sched.checks() != 3 {
			t.Errorf("after an hour: %d checks", sched.checks())
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

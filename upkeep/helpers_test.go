package upkeep

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/internal/syncbuf"
	"github.com/tartyci/tarty/scheduler"
)

// clock is a settable time source shared by the fakes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep advances the clock by d (the GitHub client's write spacing).
func (c *clock) Sleep(_ context.Context, d time.Duration) error {
	c.Advance(d)
	return nil
}

// logBuf collects log lines safely.
type logBuf struct{ syncbuf.Buffer }

func (l *logBuf) count(s string) int { return strings.Count(l.String(), s) }

func (l *logBuf) logger() zerolog.Logger { return zerolog.New(l) }

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(dir, StateFile), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeScheduler records what the guard tells and asks the scheduler.
type fakeScheduler struct {
	mu       sync.Mutex
	status   scheduler.Status
	statErr  error
	runner   []scheduler.RunnerStatus
	rebuilds int
	refuse   error
}

func newFakeScheduler() *fakeScheduler {
	return &fakeScheduler{status: scheduler.Status{Rebuild: scheduler.RebuildStatus{State: "idle"}}}
}

func (f *fakeScheduler) Status(context.Context) (scheduler.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.statErr
}

func (f *fakeScheduler) Rebuild(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	f.rebuilds++
	return nil
}

func (f *fakeScheduler) SetRunnerStatus(r scheduler.RunnerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runner = append(f.runner, r)
}

func (f *fakeScheduler) last() scheduler.RunnerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.runner) == 0 {
		return scheduler.RunnerStatus{}
	}
	return f.runner[len(f.runner)-1]
}

func (f *fakeScheduler) checks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runner)
}

func (f *fakeScheduler) rebuildCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rebuilds
}

func (f *fakeScheduler) setQueued(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Queued = make([]scheduler.JobStatus, n)
}

// fakeSource answers the guard's questions to GitHub and counts them.
type fakeSource struct {
	mu          sync.Mutex
	releases    []ghapi.RunnerRelease
	releasesErr error
	offered     string
	offeredErr  error
	enterprise  string
	calls       int
}

func (f *fakeSource) RunnerReleases(context.Context) ([]ghapi.RunnerRelease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return append([]ghapi.RunnerRelease(nil), f.releases...), f.releasesErr
}

func (f *fakeSource) OfferedRunnerVersion(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offered, f.offeredErr
}

func (f *fakeSource) EnterpriseVersion(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enterprise, nil
}

func (f *fakeSource) set(change func(*fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeSource) releaseCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var errDown = errors.New("502 Bad Gateway")

// day is a point in time the tests count from.
var day0 = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// releases: 2.335.0 on day0-40d, 2.336.0 on day0-25d, 2.337.0 on day0-10d.
func testReleases() []ghapi.RunnerRelease {
	return []ghapi.RunnerRelease{
		{Version: "2.337.0", PublishedAt: day0.Add(-10 * 24 * time.Hour)},
		{Version: "2.336.0", PublishedAt: day0.Add(-25 * 24 * time.Hour)},
		{Version: "2.335.0", PublishedAt: day0.Add(-40 * 24 * time.Hour)},
	}
}

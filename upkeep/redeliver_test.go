package upkeep

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/webhook"
)

const (
	hookSecret = "redelivery-test-secret-0123456789"
	hookPath   = "/github/webhook"
)

// outage is Tarty's webhook listener (the real webhook package) behind a
// tunnel that answers 502 while the daemon is down, the fake GitHub
// delivering to it, and the real GitHub client.
type outage struct {
	t       *testing.T
	clk     *clock
	gh      *fakegithub.Server
	client  *ghapi.Client
	events  chan tarty.JobEvent
	down    atomic.Bool
	refuse  sync.Map // GUIDs the tunnel keeps failing
	store   *Store
	dir     string
	met     *Metrics
	logs    *logBuf
	startAt time.Time
}

func newOutage(t *testing.T) *outage {
	t.Helper()
	o := &outage{t: t, clk: newClock(time.Now().UTC().Truncate(time.Second)), events: make(chan tarty.JobEvent, 1000),
		dir: t.TempDir(), logs: &logBuf{}}
	o.startAt = o.clk.Now()
	wh, err := webhook.New(webhook.Options{Path: hookPath, Secret: []byte(hookSecret), Organization: fakegithub.DefaultOrganization,
		Matcher: tarty.NewLabelMatcher([]string{"tarty"}), Events: o.events, Now: o.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tunnel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, bad := o.refuse.Load(r.Header.Get("X-GitHub-Delivery")); bad || o.down.Load() {
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
			return
		}
		wh.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(tunnel.Close)
	o.gh = fakegithub.New(fakegithub.Config{WebhookURL: tunnel.URL + hookPath, WebhookSecret: hookSecret,
		WebhookHookID: 4242, Now: o.clk.Now})
	t.Cleanup(o.gh.Close)
	o.gh.AddRepo("app")
	if o.client, err = ghapi.New(ghapi.Options{BaseURL: o.gh.URL(), Token: o.gh.Token(), Organization: o.gh.Organization(),
		Labels: []string{"tarty"}, Clock: o.clk.Now, Sleep: o.clk.Sleep, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	o.store = newStore(t, o.dir)
	if o.met, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *outage) redeliverer(mutate ...func(*RedeliverOptions)) *Redeliverer {
	opts := RedeliverOptions{GitHub: o.client, Path: hookPath, Store: o.store, Metrics: o.met,
		Logger: o.logs.logger(), Now: o.clk.Now}
	for _, m := range mutate {
		m(&opts)
	}
	return NewRedeliverer(opts)
}

// queue queues n jobs with Tarty's label and waits for their deliveries.
func (o *outage) queue(n int) []int64 {
	o.t.Helper()
	var ids []int64
	for range n {
		ids = append(ids, o.gh.QueueJob("app", "self-hosted", "macOS", "tarty").ID)
	}
	o.wait()
	return ids
}

func (o *outage) wait() {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.gh.WaitWebhooks(ctx); err != nil {
		o.t.Fatal(err)
	}
}

// drain returns the job events the listener handed on so far.
func (o *outage) drain() []tarty.JobEvent {
	var out []tarty.JobEvent
	for {
		select {
		case ev := <-o.events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// failed lists the fake's failed deliveries' IDs and GUIDs, oldest first.
func (o *outage) failed() (ids []int64, guids []string) {
	for _, d := range o.gh.Deliveries() {
		if !d.OK() && !d.Redelivery {
			ids, guids = append(ids, d.ID), append(guids, d.GUID)
		}
	}
	return ids, guids
}

func (o *outage) sweep(r *Redeliverer) SweepReport {
	o.t.Helper()
	rep, err := r.Sweep(context.Background())
	if err != nil {
		o.t.Fatalf("sweep: %v", err)
	}
	o.wait()
	return rep
}

// An outage: 30 deliveries fail while Tarty is down; the sweep at start asks
// for each once, oldest first, a second apart; they reach the real webhook
// listener, signed like the originals, and hand the jobs on in order.
func TestRedeliverAnOutage(t *testing.T) {
	o := newOutage(t)
	r := o.redeliverer()
	before := o.queue(5)
	if evs := o.drain(); len(evs) != 5 {
		t.Fatalf("before the outage: %d events", len(evs))
	}
	if rep := o.sweep(r); len(rep.Redelivered) != 0 || rep.Listed != 5 || rep.Hook.ID != 4242 {
		t.Fatalf("nothing failed yet: %+v", rep)
	}

	o.down.Store(true)
	lost := o.queue(30)
	o.down.Store(false)
	if evs := o.drain(); len(evs) != 0 {
		t.Fatalf("during the outage: %d events", len(evs))
	}
	failedIDs, failedGUIDs := o.failed()
	if len(failedIDs) != 30 {
		t.Fatalf("%d failed deliveries", len(failedIDs))
	}

	start := o.clk.Now()
	rep := o.sweep(r)
	if !slices.Equal(rep.Redelivered, failedGUIDs) || rep.Listed != 30 || rep.More {
		t.Fatalf("sweep: %+v", rep)
	}
	if got := o.gh.RedeliveryRequests(); !slices.Equal(got, failedIDs) {
		t.Errorf("redelivery requests %v, want the failed ones oldest first %v", got, failedIDs)
	}
	if spent := o.clk.Now().Sub(start); spent < 29*time.Second {
		t.Errorf("30 requests within %s: not a second apart", spent)
	}
	evs := o.drain()
	if len(evs) != 30 {
		t.Fatalf("%d events reached the scheduler's queue, want 30", len(evs))
	}
	for i, ev := range evs {
		if ev.JobID != lost[i] || ev.DeliveryID != failedGUIDs[i] || ev.Action != tarty.ActionQueued {
			t.Errorf("event %d: job %d delivery %s %s, want job %d delivery %s", i, ev.JobID, ev.DeliveryID, ev.Action, lost[i], failedGUIDs[i])
		}
	}
	for _, id := range failedIDs {
		if !strings.Contains(o.logs.String(), fmt.Sprintf(`"delivery_id":%d,`, id)) {
			t.Errorf("the log does not name delivery %d", id)
		}
	}

	// The next sweep sees them arrive and asks for nothing; the one after
	// reads nothing old.
	rep = o.sweep(r)
	if rep.Delivered != 30 || len(rep.Redelivered) != 0 || rep.FailedAgain != 0 {
		t.Errorf("second sweep: %+v", rep)
	}
	if rep = o.sweep(r); rep.Listed != 0 || len(rep.Redelivered) != 0 {
		t.Errorf("third sweep: %+v", rep)
	}
	if n := len(o.gh.RedeliveryRequests()); n != 30 {
		t.Errorf("%d redelivery requests in all", n)
	}
	for res, want := range map[string]float64{ResultAccepted: 30, ResultDelivered: 30, ResultFailedAgain: 0, ResultRefused: 0} {
		if got := testutil.ToFloat64(o.met.redeliveries.WithLabelValues(res)); got != want {
			t.Errorf("redeliveries{%s} = %v, want %v", res, got, want)
		}
	}
	if got := testutil.ToFloat64(o.met.sweeps.WithLabelValues(SweepOK)); got != 4 {
		t.Errorf("sweeps{ok} = %v", got)
	}
	_ = before
}

// A redelivery that fails again is never asked for again, across restarts.
func TestRedeliveryThatFailsAgainIsNotRetried(t *testing.T) {
	o := newOutage(t)
	r := o.redeliverer()
	o.down.Store(true)
	o.queue(3)
	o.down.Store(false)
	_, guids := o.failed()
	o.refuse.Store(guids[1], true) // this one keeps failing

	if rep := o.sweep(r); len(rep.Redelivered) != 3 {
		t.Fatalf("first sweep: %+v", rep)
	}
	rep := o.sweep(r)
	if rep.Delivered != 2 || rep.FailedAgain != 1 || len(rep.Redelivered) != 0 {
		t.Errorf("second sweep: %+v", rep)
	}
	for range 3 {
		o.clk.Advance(11 * time.Minute)
		if rep := o.sweep(r); len(rep.Redelivered) != 0 {
			t.Errorf("asked again: %+v", rep)
		}
	}
	// A restart reads the same state: still not asked again.
	r2 := o.redeliverer()
	if rep := o.sweep(r2); len(rep.Redelivered) != 0 {
		t.Errorf("after a restart: %+v", rep)
	}
	// Even with the watermark lost (another hook, then this one again),
	// the GUIDs asked for are remembered.
	st := o.store.redeliver()
	st.LastDeliveryID = 0
	_ = o.store.setRedeliver(st)
	if rep := o.sweep(r2); len(rep.Redelivered) != 0 || rep.Listed == 0 {
		t.Errorf("from the start of the list: %+v", rep)
	}
	if n := len(o.gh.RedeliveryRequests()); n != 3 {
		t.Errorf("%d redelivery requests, want 3", n)
	}
	if got := testutil.ToFloat64(o.met.redeliveries.WithLabelValues(ResultFailedAgain)); got != 1 {
		t.Errorf("failed_again = %v", got)
	}
	if o.logs.count("failed again: it is not asked for again") != 1 {
		t.Errorf("log: %s", o.logs.String())
	}
}

// Without the webhooks permission nothing breaks: the sweep says so once,
// and counts; granted later, it catches up.
func TestRedeliveryWithoutPermission(t *testing.T) {
	o := newOutage(t)
	r := o.redeliverer()
	o.down.Store(true)
	o.queue(4)
	o.down.Store(false)

	for _, status := range []int{http.StatusNotFound, http.StatusForbidden} {
		o.gh.DenyHooks(status)
		_, err := r.Sweep(context.Background())
		var ae *ghapi.APIError
		if !errors.Is(err, ghapi.ErrHookAccess) || !errors.As(err, &ae) || !strings.Contains(ae.Fix, "admin:org_hook") {
			t.Errorf("denied %d: %v", status, err)
		}
	}
	if n := o.logs.count("cannot redeliver"); n != 1 {
		t.Errorf("the missing permission was logged %d times:\n%s", n, o.logs.String())
	}
	if got := testutil.ToFloat64(o.met.sweeps.WithLabelValues(SweepNoPermission)); got != 2 {
		t.Errorf("sweeps{no_permission} = %v", got)
	}

	// Read but not write: the listing works, the first request is refused
	// and the sweep stops there; nothing is lost.
	o.gh.DenyHooks(0)
	o.gh.Inject(fakegithub.Fault{Method: "POST", Path: "/orgs/acme/hooks/4242/deliveries/*/attempts", Kind: fakegithub.Forbidden})
	rep, err := r.Sweep(context.Background())
	if err != nil || len(rep.Redelivered) != 0 || rep.Refused != 1 {
		t.Errorf("write refused: %+v, %v", rep, err)
	}
	if got := testutil.ToFloat64(o.met.sweeps.WithLabelValues(SweepNoPermission)); got != 3 {
		t.Errorf("sweeps{no_permission} = %v", got)
	}
	if rep := o.sweep(r); len(rep.Redelivered) != 4 {
		t.Errorf("once allowed: %+v", rep)
	}
	if evs := o.drain(); len(evs) != 4 {
		t.Errorf("%d events", len(evs))
	}
}

// Bounds: at most MaxPerSweep per sweep (oldest first, the rest next time),
// none older than MaxAge.
func TestRedeliveryBounds(t *testing.T) {
	o := newOutage(t)
	r := o.redeliverer(func(ro *RedeliverOptions) { ro.MaxPerSweep = 50 })
	o.down.Store(true)
	o.queue(5)
	o.clk.Advance(4 * days) // these five are past GitHub's three days
	o.queue(60)
	o.down.Store(false)
	ids, _ := o.failed()

	rep := o.sweep(r)
	if len(rep.Redelivered) != 50 || !rep.More {
		t.Fatalf("first sweep: %d redelivered, more %v", len(rep.Redelivered), rep.More)
	}
	if got := o.gh.RedeliveryRequests(); !slices.Equal(got, ids[5:55]) {
		t.Errorf("first sweep asked %v, want %v", got, ids[5:55])
	}
	rep = o.sweep(r)
	if len(rep.Redelivered) != 10 || rep.More || rep.Delivered != 50 {
		t.Errorf("second sweep: %+v", rep)
	}
	if got := o.gh.RedeliveryRequests(); !slices.Equal(got, ids[5:]) {
		t.Errorf("in all %v, want %v", got, ids[5:])
	}
}

// The hook cannot be found: said once, counted, nothing else happens.
func TestRedeliveryWithoutAHook(t *testing.T) {
	o := newOutage(t)
	r := o.redeliverer(func(ro *RedeliverOptions) { ro.Path = "/elsewhere" })
	for range 2 {
		if _, err := r.Sweep(context.Background()); !errors.Is(err, ghapi.ErrHookNotFound) {
			t.Errorf("sweep: %v", err)
		}
	}
	if o.logs.count(`"level":"warn"`) != 1 || o.logs.count("server.webhook_path") != 2 || testutil.ToFloat64(o.met.sweeps.WithLabelValues(SweepNoHook)) != 2 {
		t.Errorf("log:\n%s", o.logs.String())
	}
	// github.hook_id names it whatever its path.
	r = o.redeliverer(func(ro *RedeliverOptions) { ro.Path, ro.HookID = "/elsewhere", 4242 })
	if rep, err := r.Sweep(context.Background()); err != nil || rep.Hook.ID != 4242 {
		t.Errorf("by ID: %+v, %v", rep, err)
	}
}

// fakeHooks is a HookSource in memory, for the rules and for Run.
type fakeHooks struct {
	mu          sync.Mutex
	failLists   int                  // the next lists fail (GitHub unreachable)
	deliveries  []ghapi.HookDelivery // newest first
	finds       int
	lists       int
	redelivered []int64
}

func (f *fakeHooks) FindHook(context.Context, int64, string) (ghapi.Hook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	return ghapi.Hook{ID: 1, Active: true}, nil
}

func (f *fakeHooks) HookDeliveries(_ context.Context, _ ghapi.Hook, after int64, since time.Time, _ int) ([]ghapi.HookDelivery, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.failLists > 0 {
		f.failLists--
		return nil, false, errors.New("dial tcp: connection refused")
	}
	var out []ghapi.HookDelivery
	for _, d := range f.deliveries {
		if d.ID <= after || d.DeliveredAt.Before(since) {
			break
		}
		out = append(out, d)
	}
	return out, true, nil
}

func (f *fakeHooks) RedeliverHookDelivery(_ context.Context, _ ghapi.Hook, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redelivered = append(f.redelivered, id)
	return nil
}

func (f *fakeHooks) add(ds ...ghapi.HookDelivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliveries = append(slices.Clone(ds), f.deliveries...)
}

func (f *fakeHooks) counts() (lists int, redelivered []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, slices.Clone(f.redelivered)
}

// Only failed workflow_job deliveries whose GUID never got through are asked
// for, one request per GUID.
func TestRedeliveryChoosesWhatToAsk(t *testing.T) {
	now := day0
	fh := &fakeHooks{}
	bad := func(id int64, guid, event string) ghapi.HookDelivery {
		return ghapi.HookDelivery{ID: id, GUID: guid, Event: event, Action: "queued", Status: "failed to connect to host", DeliveredAt: now}
	}
	good := func(id int64, guid string, redelivery bool) ghapi.HookDelivery {
		return ghapi.HookDelivery{ID: id, GUID: guid, Event: "workflow_job", Status: "OK", StatusCode: 202, Redelivery: redelivery, DeliveredAt: now}
	}
	// Newest first, as GitHub lists them.
	fh.add(
		good(9, "g-redone", true), // an operator redelivered it by hand
		bad(8, "g-twice", "workflow_job"),
		bad(7, "g-ping", "ping"),
		bad(6, "g-twice", "workflow_job"),
		bad(5, "g-redone", "workflow_job"),
		good(4, "g-fine", false),
		bad(3, "g-lost", "workflow_job"),
	)
	r := NewRedeliverer(RedeliverOptions{GitHub: fh, Path: hookPath, Store: newStore(t, t.TempDir()), Now: func() time.Time { return now }})
	rep, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, got := fh.counts(); !slices.Equal(got, []int64{3, 6}) || !slices.Equal(rep.Redelivered, []string{"g-lost", "g-twice"}) {
		t.Errorf("asked for %v (%v), want 3 and 6", got, rep.Redelivered)
	}
}

// Run sweeps at start, then at most once per MinInterval however many gaps
// are reported, and again by itself while a sweep left work (synctest:
// simulated time).
func TestRedeliveryRunIsRateLimited(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		fh := &fakeHooks{failLists: 1} // GitHub unreachable at start
		store, err := OpenStore(dir+"/"+StateFile, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		r := NewRedeliverer(RedeliverOptions{GitHub: fh, Path: hookPath, Store: store, MaxPerSweep: 2})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if lists, _ := fh.counts(); lists != 1 {
			t.Fatalf("at start: %d sweeps", lists)
		}
		time.Sleep(10 * time.Minute) // the failed one is tried again
		synctest.Wait()
		if lists, _ := fh.counts(); lists != 2 {
			t.Fatalf("after a failed sweep: %d sweeps", lists)
		}

		for range 5 {
			r.Gap()
		}
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		if lists, _ := fh.counts(); lists != 2 {
			t.Errorf("gaps within 10 minutes: %d sweeps", lists)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if lists, _ := fh.counts(); lists != 3 {
			t.Errorf("10 minutes after: %d sweeps", lists)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if lists, _ := fh.counts(); lists != 3 {
			t.Errorf("no gap, no sweep: %d sweeps", lists)
		}

		// Five failures, two per sweep: the rest follow without a gap.
		for i := range 5 {
			fh.add(ghapi.HookDelivery{ID: int64(100 + i), GUID: fmt.Sprint("g", i), Event: "workflow_job",
				Status: "Invalid HTTP Response: 502", DeliveredAt: time.Now()})
		}
		r.Gap()
		synctest.Wait()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		lists, asked := fh.counts()
		if !slices.Equal(asked, []int64{100, 101, 102, 103, 104}) || lists != 6 {
			t.Errorf("after 30 minutes: %d sweeps asked %v", lists, asked)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

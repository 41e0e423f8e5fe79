package fakeorchard_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/orchard/fakeorchard"
)

// clock is an injectable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T, cfg fakeorchard.Config) (*fakeorchard.Server, *orchard.Client) {
	t.Helper()
	f := fakeorchard.New(cfg)
	t.Cleanup(f.Close)
	f.AddAccount("tarty", "tok", fakeorchard.RoleComputeRead, fakeorchard.RoleComputeWrite)
	c, err := orchard.NewClient(orchard.Options{URL: f.URL(), ServiceAccount: "tarty", Token: "tok", CACert: f.CertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func httpClient(f *fakeorchard.Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.CertPEM())
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: orchard.DefaultServerName}}}
}

func TestRootNeedsNoAuthAndInfoNeedsAnAccount(t *testing.T) {
	f, _ := setup(t, fakeorchard.Config{})
	hc := httpClient(f)
	resp, err := hc.Get(f.URL() + "/v1/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/ = %v, %v", resp, err)
	}
	resp.Body.Close()
	resp, err = hc.Get(f.URL() + "/v1/controller/info")
	if err != nil || resp.StatusCode != 401 || resp.ContentLength > 0 {
		t.Fatalf("info without credentials = %v, %v (want 401, empty)", resp, err)
	}
	resp.Body.Close()
}

func TestPlacementIsFIFOByResourcesAndLabels(t *testing.T) {
	f, c := setup(t, fakeorchard.Config{PrepareTime: time.Hour})
	ctx := context.Background()
	f.AddWorker("a", fakeorchard.WorkerOptions{Slots: 2, Labels: map[string]string{"pool": "ci"}})
	f.AddWorker("b", fakeorchard.WorkerOptions{Slots: 1})
	f.AddWorker("p", fakeorchard.WorkerOptions{Slots: 2, Labels: map[string]string{"pool": "ci"}, Paused: true})
	for _, n := range []string{"ci-1", "ci-2", "ci-3"} {
		if _, err := c.CreateVM(ctx, orchard.VM{Name: n, Image: "img", Headless: true, Labels: map[string]string{"pool": "ci"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "any-1", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for _, v := range f.VMs() {
		where[v.Name] = v.Worker
	}
	// ci-1 and ci-2 fill a (the only unpaused worker with the label); ci-3
	// waits; any-1 goes to b.
	if where["ci-1"] != "a" || where["ci-2"] != "a" || where["ci-3"] != "" || where["any-1"] != "b" {
		t.Fatalf("placement %v", where)
	}
	// Freeing a slot places the oldest waiting VM first.
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "ci-4", Image: "img", Headless: true, Labels: map[string]string{"pool": "ci"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVM(ctx, "ci-1"); err != nil {
		t.Fatal(err)
	}
	vm3, _ := c.GetVM(ctx, "ci-3")
	vm4, _ := c.GetVM(ctx, "ci-4")
	if vm3.Worker != "a" || vm4.Worker != "" {
		t.Fatalf("after a slot freed: ci-3 on %q, ci-4 on %q", vm3.Worker, vm4.Worker)
	}
	// Resuming the paused worker places ci-4.
	f.SetPaused("p", false)
	if vm4, _ = c.GetVM(ctx, "ci-4"); vm4.Worker != "p" {
		t.Fatalf("ci-4 on %q after p resumed", vm4.Worker)
	}
	if st := f.Stats(); st.MaxPerWorker != 2 {
		t.Errorf("most VMs on one worker %d", st.MaxPerWorker)
	}
}

func TestOfflineWorkerByTheClockFailsItsVMs(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	f, c := setup(t, fakeorchard.Config{Now: clk.Now, PrepareTime: time.Second})
	ctx := context.Background()
	f.AddWorker("a", fakeorchard.WorkerOptions{})
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "v", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	if v, _ := c.GetVM(ctx, "v"); v.Status != orchard.StatusRunning || v.StartedAt == nil {
		t.Fatalf("not running: %+v", v)
	}
	f.StopHeartbeat("a")
	clk.Add(2 * time.Minute)
	if v, _ := c.GetVM(ctx, "v"); v.Status != orchard.StatusRunning {
		t.Fatalf("failed before the offline timeout: %+v", v)
	}
	clk.Add(time.Minute + time.Second)
	v, _ := c.GetVM(ctx, "v")
	if v.Status != orchard.StatusFailed || !v.WorkerLost() {
		t.Fatalf("after the offline timeout: %+v", v)
	}
	// An offline worker takes nothing new; its failed VM frees the slot but stays listed.
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "w", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	if w, _ := c.GetVM(ctx, "w"); w.Worker != "" {
		t.Fatalf("placed on an offline worker: %+v", w)
	}
	f.Heartbeat("a")
	if w, _ := c.GetVM(ctx, "w"); w.Worker != "a" {
		t.Fatalf("not placed after the worker came back: %+v", w)
	}
	if _, err := c.GetVM(ctx, "v"); err != nil {
		t.Fatalf("the failed VM is no longer listed: %v", err)
	}
}

func TestInjectedFailures(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	f, c := setup(t, fakeorchard.Config{Now: clk.Now, PrepareTime: 20 * time.Millisecond})
	ctx := context.Background()
	f.AddWorker("a", fakeorchard.WorkerOptions{Slots: 4})
	f.FailImage("broken", "failed to pull/clone the VM: manifest unknown")
	for _, n := range []string{"pull", "lost", "exit"} {
		img := "img"
		if n == "pull" {
			img = "broken"
		}
		if _, err := c.CreateVM(ctx, orchard.VM{Name: n, Image: img, Headless: true}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Second) // past the preparation; the next request moves the fake's world on
	if v, _ := c.GetVM(ctx, "pull"); v.Status != orchard.StatusFailed || v.StatusMessage != "failed to pull/clone the VM: manifest unknown" {
		t.Fatalf("pull: %+v", v)
	}
	if v, _ := c.GetVM(ctx, "exit"); v.Status != orchard.StatusRunning {
		t.Fatalf("exit before its guest exits: %+v", v)
	}
	f.GuestExit("exit")
	if v, _ := c.GetVM(ctx, "exit"); !v.GuestExited() || v.StatusMessage != fakeorchard.MsgGuestExited {
		t.Fatalf("exit: %+v", v)
	}
	f.RestartWorker("a")
	if v, _ := c.GetVM(ctx, "lost"); !v.WorkerLost() || v.StatusMessage != fakeorchard.MsgLostTrack {
		t.Fatalf("lost: %+v", v)
	}
	_, err := c.GetVM(ctx, "gone")
	if !errors.Is(err, orchard.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOnFailureRepends(t *testing.T) {
	clk := &clock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	f, c := setup(t, fakeorchard.Config{Now: clk.Now, PrepareTime: time.Second})
	ctx := context.Background()
	f.AddWorker("a", fakeorchard.WorkerOptions{})
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "r", Image: "img", Headless: true, RestartPolicy: orchard.RestartOnFailure}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	if v, _ := c.GetVM(ctx, "r"); v.Status != orchard.StatusRunning { // a request moves the fake's world on
		t.Fatalf("not running: %+v", v)
	}
	f.GuestExit("r")
	clk.Add(10 * time.Second)
	if v, _ := c.GetVM(ctx, "r"); v.Status != orchard.StatusFailed {
		t.Fatalf("restarted within 15 s: %+v", v)
	}
	clk.Add(6 * time.Second)
	if v, _ := c.GetVM(ctx, "r"); v.Status == orchard.StatusFailed || v.RestartCount != 1 {
		t.Fatalf("not re-pended: %+v", v)
	}
}

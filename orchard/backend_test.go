package orchard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/orchard/fakeorchard"
	"github.com/tartyci/tarty/scheduler"
)

var (
	_ scheduler.Backend = (*orchard.Backend)(nil)
	_ scheduler.Fleet   = (*orchard.Backend)(nil)
)

const prefix = "tarty-fleet"

func newBackend(t testing.TB, f *fakeorchard.Server, mutate ...func(*orchard.BackendOptions)) *orchard.Backend {
	t.Helper()
	o := orchard.BackendOptions{Prefix: prefix, PlaceTimeout: 2 * time.Second}
	for _, m := range mutate {
		m(&o)
	}
	b := orchard.NewBackend(newClient(t, f), o)
	t.Cleanup(b.Close)
	return b
}

func TestBackendCreateSendsNothingSecret(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: time.Hour})
	f.AddWorker("mac-1", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "ci", "site": "ams"}})
	b := newBackend(t, f, func(o *orchard.BackendOptions) {
		o.WorkerLabels, o.Softnet, o.CPU, o.MemoryMB = map[string]string{"pool": "ci"}, true, 4, 8192
	})
	ctx := ctxT(t, 10*time.Second)
	if err := b.Create(ctx, "ghcr.io/acme/runner:15", prefix+"-0011aabb"); err != nil {
		t.Fatal(err)
	}
	reqs := f.CreateRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d creates", len(reqs))
	}
	var sent map[string]any
	if err := json.Unmarshal(reqs[0], &sent); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": prefix + "-0011aabb", "image": "ghcr.io/acme/runner:15", "headless": true, "netSoftnet": true,
		"restart_policy": "Never", "cpu": 4.0, "memory": 8192.0}
	for k, v := range want {
		if sent[k] != v {
			t.Errorf("%s = %v, want %v", k, sent[k], v)
		}
	}
	if r, _ := sent["resources"].(map[string]any); r[orchard.ResourceTartVMs] != 1.0 {
		t.Errorf("resources %v", sent["resources"])
	}
	if l, _ := sent["labels"].(map[string]any); len(l) != 1 || l["pool"] != "ci" {
		t.Errorf("labels %v", sent["labels"])
	}
	for _, k := range []string{"startup_script", "password", "username", "worker", "status", "status_message", "env"} {
		if _, ok := sent[k]; ok {
			t.Errorf("the create sends %s", k)
		}
	}
	if err := b.Create(ctx, "img", "Tarty_Bad"); err == nil {
		t.Error("a name outside [a-z0-9-] was accepted")
	}
}

func TestBackendCapacityCountsMatchingOnlineUnpausedWorkers(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: time.Hour})
	ci := map[string]string{"pool": "ci"}
	f.AddWorker("a", fakeorchard.WorkerOptions{Labels: ci})
	f.AddWorker("b", fakeorchard.WorkerOptions{Labels: ci})
	f.AddWorker("paused", fakeorchard.WorkerOptions{Labels: ci, Paused: true})
	f.AddWorker("lost", fakeorchard.WorkerOptions{Labels: ci})
	f.AddWorker("other", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "gpu"}})
	f.LoseWorker("lost")
	ctx := ctxT(t, 10*time.Second)
	c := newClient(t, f)
	// Someone else's VM on a, and one waiting that a could take.
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "foreign-1", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, f, func(o *orchard.BackendOptions) { o.WorkerLabels = ci })
	capa, err := b.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a and b offer 4, the foreign VM holds one of them (on a or b by the
	// busiest-first rule, or on other: it has no labels).
	vm, _ := c.GetVM(ctx, "foreign-1")
	want := 4
	if vm.Worker == "a" || vm.Worker == "b" {
		want = 3
	}
	if capa.Slots != want {
		t.Fatalf("capacity %+v (foreign VM on %s), want %d", capa, vm.Worker, want)
	}
	// Tarty's own VMs stay inside the capacity.
	for _, n := range []string{"-00000001", "-00000002"} {
		if err := b.Create(ctx, "img", prefix+n); err != nil {
			t.Fatal(err)
		}
	}
	if capa2, _ := b.Capacity(ctx); capa2.Slots != want {
		t.Fatalf("capacity with two of Tarty's VMs %+v, want %d", capa2, want)
	}
	ws, err := b.Workers(ctx)
	if err != nil || len(ws) != 5 {
		t.Fatalf("Workers = %+v, %v", ws, err)
	}
	byName := map[string]tarty.Worker{}
	for _, w := range ws {
		byName[w.Name] = w
	}
	if !byName["a"].Matches || byName["paused"].Matches || byName["lost"].Online || byName["other"].Matches {
		t.Errorf("workers %+v", ws)
	}
	if n := len(byName["a"].VMs) + len(byName["b"].VMs); n != 2 {
		t.Errorf("Tarty's VMs on a and b: %d", n)
	}
}

func TestBackendRefusesACreateNoWorkerCanTake(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: time.Hour})
	f.AddWorker("a", fakeorchard.WorkerOptions{Slots: 2})
	b := newBackend(t, f)
	ctx := ctxT(t, 10*time.Second)
	for _, n := range []string{"-00000001", "-00000002"} {
		if err := b.Create(ctx, "img", prefix+n); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Create(ctx, "img", prefix+"-00000003")
	var nr *orchard.NoRoomError
	if !errors.As(err, &nr) || !tarty.IsVMLimit(err) {
		t.Fatalf("third create = %v, want a VM-limit refusal", err)
	}
	if _, ok := f.VM(prefix + "-00000003"); ok {
		t.Fatal("the refused VM was created")
	}
	// A paused worker takes nothing: refused too.
	f.AddWorker("b", fakeorchard.WorkerOptions{Paused: true})
	if err := b.Create(ctx, "img", prefix+"-00000004"); !tarty.IsVMLimit(err) {
		t.Fatalf("create with only a paused worker free = %v", err)
	}
	if b.Stats().Refused != 2 {
		t.Errorf("stats %+v", b.Stats())
	}
}

func TestBackendBootAndEnds(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: 100 * time.Millisecond})
	f.AddWorker("a", fakeorchard.WorkerOptions{Slots: 4})
	f.AddWorker("b", fakeorchard.WorkerOptions{Slots: 1})
	b := newBackend(t, f)
	ctx := ctxT(t, 20*time.Second)
	boot := func(name string) <-chan error {
		t.Helper()
		if err := b.Create(ctx, "img", name); err != nil {
			t.Fatal(err)
		}
		ch, err := b.Boot(ctx, name)
		if err != nil {
			t.Fatalf("Boot %s: %v", name, err)
		}
		if v, _ := f.VM(name); v.Status != orchard.StatusRunning {
			t.Fatalf("Boot returned before running: %+v", v)
		}
		return ch
	}
	end := func(ch <-chan error) error {
		t.Helper()
		select {
		case err := <-ch:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the VM's end was not delivered")
			return nil
		}
	}

	// The guest powers off: a clean end.
	ch := boot(prefix + "-00000001")
	f.GuestExit(prefix + "-00000001")
	if err := end(ch); err != nil {
		t.Fatalf("guest power-off = %v, want nil", err)
	}
	// Tarty stops it: a clean end.
	ch = boot(prefix + "-00000002")
	if err := b.Stop(ctx, prefix+"-00000002"); err != nil {
		t.Fatal(err)
	}
	if err := end(ch); err != nil {
		t.Fatalf("stop = %v, want nil", err)
	}
	if err := b.Delete(ctx, prefix+"-00000002"); err != nil {
		t.Fatalf("deleting a deleted VM: %v", err)
	}
	if err := b.Stop(ctx, prefix+"-missing"); err != nil {
		t.Fatalf("stopping a missing VM: %v", err)
	}
	// Its worker restarts: an error that says so.
	ch = boot(prefix + "-00000003")
	v, _ := f.VM(prefix + "-00000003")
	f.RestartWorker(v.Worker)
	var lost *orchard.WorkerLostError
	if err := end(ch); !errors.As(err, &lost) || lost.Worker != v.Worker {
		t.Fatalf("worker restart = %v", err)
	}
	// Its worker goes offline.
	ch = boot(prefix + "-00000004")
	v, _ = f.VM(prefix + "-00000004")
	f.LoseWorker(v.Worker)
	if err := end(ch); !errors.As(err, &lost) || !strings.Contains(lost.Message, "lost connection") {
		t.Fatalf("worker offline = %v", err)
	}
	// A pull that fails is Boot's error.
	f.FailImage("broken", "failed to pull/clone the VM: manifest unknown")
	if err := b.Create(ctx, "broken", prefix+"-00000005"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Boot(ctx, prefix+"-00000005")
	var failed *orchard.VMFailedError
	if !errors.As(err, &failed) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("Boot of a failed pull = %v", err)
	}
	st := b.Stats()
	if st.Exited != 1 || st.Lost != 2 {
		t.Errorf("stats %+v", st)
	}
	// VMs lists the prefix only, running or not.
	vms, err := b.VMs(ctx, prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, vm := range vms {
		if vm.Running {
			running++
		}
	}
	if len(vms) != 4 || running != 0 {
		t.Errorf("VMs = %+v", vms)
	}
}

func TestBackendDeletesAVMNoWorkerTakes(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: 50 * time.Millisecond})
	f.AddWorker("a", fakeorchard.WorkerOptions{})
	b := newBackend(t, f, func(o *orchard.BackendOptions) { o.PlaceTimeout = 300 * time.Millisecond })
	ctx := ctxT(t, 10*time.Second)

	// The controller's scheduler holds it although the worker has room.
	f.HoldPlacement(true)
	if err := b.Create(ctx, "img", prefix+"-00000001"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Boot(ctx, prefix+"-00000001")
	if err == nil || tarty.IsVMLimit(err) || !strings.Contains(err.Error(), "no worker took") {
		t.Fatalf("Boot of a VM never placed = %v", err)
	}
	if _, ok := f.VM(prefix + "-00000001"); ok {
		t.Fatal("the unplaced VM was left pending")
	}
	// The worker went away meanwhile: the fleet has no room, a VM-limit error.
	if err := b.Create(ctx, "img", prefix+"-00000002"); err != nil {
		t.Fatal(err)
	}
	f.SetPaused("a", true)
	if _, err := b.Boot(ctx, prefix+"-00000002"); !tarty.IsVMLimit(err) {
		t.Fatalf("Boot with no room left = %v", err)
	}
	if st := f.Stats(); st.NeverPlaced != 2 {
		t.Errorf("fake stats %+v", st)
	}
	if b.Stats().Unplaced != 2 {
		t.Errorf("backend stats %+v", b.Stats())
	}
	// A VM placed but slow to prepare (a long pull) is not deleted.
	f.SetPaused("a", false)
	f.HoldPlacement(false)
	slow := newFake(t, fakeorchard.Config{PrepareTime: time.Second})
	slow.AddWorker("a", fakeorchard.WorkerOptions{})
	sb := newBackend(t, slow, func(o *orchard.BackendOptions) { o.PlaceTimeout = 200 * time.Millisecond })
	if err := sb.Create(ctx, "img", prefix+"-00000003"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Boot(ctx, prefix+"-00000003"); err != nil {
		t.Fatalf("Boot of a slow pull: %v", err)
	}
}

func TestBackendAddressAndDial(t *testing.T) {
	echo := echoServer(t)
	f := newFake(t, fakeorchard.Config{PrepareTime: 50 * time.Millisecond,
		Forward: func(vm string, port int) string { return echo }})
	f.AddWorker("a", fakeorchard.WorkerOptions{})
	b := newBackend(t, f)
	ctx := ctxT(t, 10*time.Second)
	name := prefix + "-0000000a"
	if err := b.Create(ctx, "img", name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Address(ctx, name, time.Second); err == nil {
		t.Error("an address for a pending VM")
	}
	if _, err := b.Boot(ctx, name); err != nil {
		t.Fatal(err)
	}
	host, err := b.Address(ctx, name, time.Second)
	if err != nil || host != "orchard-vm:"+name {
		t.Fatalf("Address = %q, %v", host, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := b.Dial(dctx, "tcp", net.JoinHostPort(host, "22"))
	cancel() // the connection outlives the dial's context
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	f.GuestExit(name)
	if _, err := b.Address(ctx, name, time.Second); err == nil {
		t.Error("an address for a VM whose guest exited")
	}
}

// A VM whose guest powered off before Boot saw it run (an image that shuts
// down at once) never started for Tarty: Boot says so, rather than return no
// error and a channel that never delivers.
func TestBackendBootOfAVMWhoseGuestAlreadyExited(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: 10 * time.Millisecond})
	f.AddWorker("a", fakeorchard.WorkerOptions{})
	b := newBackend(t, f)
	ctx := ctxT(t, 20*time.Second)
	name := prefix + "-00000001"
	if err := b.Create(ctx, "img", name); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !f.GuestExit(name) {
		if time.Now().After(deadline) {
			t.Fatal("the VM never ran on the controller")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ch, err := b.Boot(ctx, name)
	if err == nil {
		t.Fatalf("Boot of a VM whose guest already powered off = %v, nil", ch)
	}
	if !strings.Contains(err.Error(), "exited") {
		t.Errorf("Boot = %v, want the guest's exit named", err)
	}
}

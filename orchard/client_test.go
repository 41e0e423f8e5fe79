package orchard_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/orchard/fakeorchard"
)

const (
	account = "tarty"
	token   = "tarty-token-0123456789"
)

func newFake(t testing.TB, cfg fakeorchard.Config) *fakeorchard.Server {
	t.Helper()
	f := fakeorchard.New(cfg)
	t.Cleanup(f.Close)
	f.AddAccount(account, token, fakeorchard.RoleComputeRead, fakeorchard.RoleComputeWrite)
	return f
}

func newClient(t testing.TB, f *fakeorchard.Server, mutate ...func(*orchard.Options)) *orchard.Client {
	t.Helper()
	o := orchard.Options{URL: f.URL(), ServiceAccount: account, Token: token, CACert: f.CertPEM(), UserAgent: "tarty/test"}
	for _, m := range mutate {
		m(&o)
	}
	c, err := orchard.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientPinsTheControllerCertificateByItsName(t *testing.T) {
	f := newFake(t, fakeorchard.Config{})
	if !strings.HasPrefix(f.URL(), "https://127.0.0.1:") {
		t.Fatalf("the fake is not dialled by address: %s", f.URL())
	}
	ctx := ctxT(t, 10*time.Second)
	if _, err := newClient(t, f).Info(ctx); err != nil {
		t.Fatalf("Info with the pinned certificate: %v", err)
	}
	// Without the certificate the system roots refuse it.
	c := newClient(t, f, func(o *orchard.Options) { o.CACert = nil })
	if _, err := c.Info(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Info without the pinned certificate = %v, want a certificate error", err)
	}
	// Another controller's certificate is refused.
	other := fakeorchard.New(fakeorchard.Config{})
	defer other.Close()
	c = newClient(t, f, func(o *orchard.Options) { o.CACert = other.CertPEM() })
	if _, err := c.Info(ctx); err == nil {
		t.Fatal("a different controller's certificate was accepted")
	}
	// A name the certificate does not carry is refused.
	c = newClient(t, f, func(o *orchard.Options) { o.ServerName = "controller.example.com" })
	if _, err := c.Info(ctx); err == nil {
		t.Fatal("a server name the certificate lacks was accepted")
	}
}

func TestClientBootstrapTokenCarriesAccountAndCertificate(t *testing.T) {
	f := newFake(t, fakeorchard.Config{})
	bt := orchard.BootstrapToken{ServiceAccount: account, Token: token, Certificate: f.CertPEM()}.Encode()
	got, err := orchard.ParseBootstrapToken(bt)
	if err != nil || got.ServiceAccount != account || got.Token != token || string(got.Certificate) != string(f.CertPEM()) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	c, err := orchard.NewClient(orchard.Options{URL: f.URL(), BootstrapToken: bt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListVMs(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("ListVMs with a bootstrap token: %v", err)
	}
	for _, bad := range []string{"", "token", "orchard-bootstrap-token-v0.", "orchard-bootstrap-token-v0.!!.??"} {
		if _, err := orchard.ParseBootstrapToken(bad); err == nil {
			t.Errorf("ParseBootstrapToken(%q) accepted", bad)
		} else if strings.Contains(err.Error(), token) {
			t.Errorf("the error quotes the token")
		}
	}
	if _, err := orchard.NewClient(orchard.Options{URL: f.URL(), BootstrapToken: bt, ServiceAccount: "x", Token: "y"}); err == nil {
		t.Error("both a bootstrap token and a service account were accepted")
	}
}

func TestClientErrorsAreTyped(t *testing.T) {
	f := newFake(t, fakeorchard.Config{})
	f.AddAccount("reader", "reader-token", fakeorchard.RoleComputeRead)
	ctx := ctxT(t, 10*time.Second)
	c := newClient(t, f)

	// Bad credentials: 401 with an empty body.
	bad := newClient(t, f, func(o *orchard.Options) { o.Token = "wrong" })
	_, err := bad.ListVMs(ctx)
	var ae *orchard.APIError
	if !errors.Is(err, orchard.ErrUnauthorized) || !errors.As(err, &ae) || ae.Status != 401 || ae.Message != "" {
		t.Fatalf("bad token: %v", err)
	}
	// A missing role: 401 (not 403) with the roles message.
	reader := newClient(t, f, func(o *orchard.Options) { o.ServiceAccount, o.Token = "reader", "reader-token" })
	if _, err := reader.ListVMs(ctx); err != nil {
		t.Fatalf("reader lists: %v", err)
	}
	_, err = reader.CreateVM(ctx, orchard.VM{Name: "x", Image: "img", Headless: true})
	if !errors.Is(err, orchard.ErrMissingRole) || !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "compute:write") {
		t.Fatalf("reader creates: %v", err)
	}
	// 404 with an empty body.
	_, err = c.GetVM(ctx, "missing")
	if !orchard.IsNotFound(err) || !errors.As(err, &ae) || ae.Message != "" {
		t.Fatalf("GetVM missing: %v", err)
	}
	if err := c.DeleteVM(ctx, "missing"); !orchard.IsNotFound(err) {
		t.Fatalf("DeleteVM missing: %v", err)
	}
	// 409 on a duplicate name; 412 on an empty image; 400 on an unknown OS.
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "dup", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateVM(ctx, orchard.VM{Name: "dup", Image: "img", Headless: true})
	if !errors.Is(err, orchard.ErrConflict) || !errors.As(err, &ae) || ae.Message != "VM with this name already exists" {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = c.CreateVM(ctx, orchard.VM{Name: "noimage", Headless: true})
	if !errors.As(err, &ae) || ae.Status != http.StatusPreconditionFailed {
		t.Fatalf("no image: %v", err)
	}
	_, err = c.CreateVM(ctx, orchard.VM{Name: "win", Image: "img", OS: "windows"})
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message != "invalid JSON was provided" {
		t.Fatalf("unknown os: %v", err)
	}
	// A delete is 200 with an empty body, then the VM is gone.
	if err := c.DeleteVM(ctx, "dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVM(ctx, "dup"); !orchard.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := orchard.NewClient(orchard.Options{URL: f.URL(), ServiceAccount: "a", Token: "b", UserAgent: "Orchard/0.55"}); err == nil {
		t.Error("a worker's User-Agent was accepted")
	}
}

func TestClientCreateDefaultsAndList(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: time.Hour})
	f.AddWorker("mac-1", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "ci"}})
	ctx := ctxT(t, 10*time.Second)
	c := newClient(t, f)
	vm, err := c.CreateVM(ctx, orchard.VM{Name: "a", Image: "ghcr.io/acme/runner:latest", Headless: true,
		Labels: map[string]string{"pool": "ci"}})
	if err != nil {
		t.Fatal(err)
	}
	if vm.Status != orchard.StatusPending || vm.UID == "" || vm.Resources[orchard.ResourceTartVMs] != 1 || vm.RestartPolicy != orchard.RestartNever {
		t.Errorf("created %+v", vm)
	}
	got, err := c.GetVM(ctx, "a")
	if err != nil || got.Worker != "mac-1" || got.StatusMessage != fakeorchard.MsgCloning {
		t.Errorf("placed right after the create: %+v, %v", got, err)
	}
	list, err := c.ListVMs(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("ListVMs = %v, %v", list, err)
	}
	ws, err := c.ListWorkers(ctx)
	if err != nil || len(ws) != 1 || ws[0].Resources[orchard.ResourceTartVMs] != 2 || ws[0].Labels["pool"] != "ci" {
		t.Errorf("ListWorkers = %+v, %v", ws, err)
	}
}

func TestClientWatchFollowsOneVM(t *testing.T) {
	f := newFake(t, fakeorchard.Config{PrepareTime: 100 * time.Millisecond})
	f.AddWorker("mac-1", fakeorchard.WorkerOptions{})
	ctx := ctxT(t, 10*time.Second)
	c := newClient(t, f)
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "w", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WatchVM(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ev, err := w.Next()
	if err != nil || ev.Type != "ADDED" || ev.Object.Name != "w" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	for ev.Object.Status != orchard.StatusRunning {
		if ev, err = w.Next(); err != nil {
			t.Fatal(err)
		}
	}
	f.GuestExit("w")
	if ev, err = w.Next(); err != nil || ev.Object.Status != orchard.StatusFailed || !ev.Object.GuestExited() {
		t.Fatalf("after the guest exit: %+v, %v", ev, err)
	}
	if err := c.DeleteVM(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if ev, err = w.Next(); err != nil || ev.Type != "DELETED" {
		t.Fatalf("after the delete: %+v, %v", ev, err)
	}
	if _, err = w.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after DELETED: %v", err)
	}
}

// echoServer answers each line with "echo: line".
func echoServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "echo: "+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestClientPortForward(t *testing.T) {
	echo := echoServer(t)
	f := newFake(t, fakeorchard.Config{PrepareTime: 50 * time.Millisecond,
		Forward: func(string, int) string { return echo }})
	f.AddAccount("connector", "connect-token", fakeorchard.RoleComputeConnect)
	f.AddAccount("reader", "reader-token", fakeorchard.RoleComputeRead)
	f.AddWorker("mac-1", fakeorchard.WorkerOptions{})
	ctx := ctxT(t, 20*time.Second)
	c := newClient(t, f)
	var ae *orchard.APIError

	_, err := c.PortForward(ctx, "missing", 22, time.Second)
	if !orchard.IsNotFound(err) {
		t.Fatalf("missing VM: %v", err)
	}
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "pf", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	// The controller waits for the VM to run, then connects.
	for _, cl := range []*orchard.Client{c, newClient(t, f, func(o *orchard.Options) { o.ServiceAccount, o.Token = "connector", "connect-token" })} {
		conn, err := cl.PortForward(ctx, "pf", 22, 5*time.Second)
		if err != nil {
			t.Fatalf("PortForward: %v", err)
		}
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "echo: hello\n" {
			t.Fatalf("read %q, %v", line, err)
		}
		if !strings.Contains(conn.RemoteAddr().String(), "orchard-vm:pf") {
			t.Errorf("remote address %s", conn.RemoteAddr())
		}
		conn.Close()
	}
	reader := newClient(t, f, func(o *orchard.Options) { o.ServiceAccount, o.Token = "reader", "reader-token" })
	if _, err := reader.PortForward(ctx, "pf", 22, time.Second); !errors.Is(err, orchard.ErrMissingRole) {
		t.Fatalf("reader port-forward: %v", err)
	}

	// A guest that powers off closes the stream; then 417.
	conn, err := c.PortForward(ctx, "pf", 22, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.GuestExit("pf")
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("stream after the guest exit: %v (want EOF)", err)
	}
	_, err = c.PortForward(ctx, "pf", 22, time.Second)
	if !errors.As(err, &ae) || ae.Status != http.StatusExpectationFailed || !strings.Contains(ae.Message, "terminal state 'failed'") {
		t.Fatalf("failed VM: %v", err)
	}

	// A VM no worker takes: 408 when the wait runs out.
	f.SetPaused("mac-1", true)
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "waits", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PortForward(ctx, "waits", 22, time.Second)
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestTimeout || !ae.Temporary() {
		t.Fatalf("pending VM: %v", err)
	}

	// A worker that stopped heartbeating: 503, empty.
	f.SetPaused("mac-1", false)
	f.AddWorker("mac-2", fakeorchard.WorkerOptions{})
	if _, err := c.CreateVM(ctx, orchard.VM{Name: "silent", Image: "img", Headless: true}); err != nil {
		t.Fatal(err)
	}
	vm := waitStatus(t, c, "silent", orchard.StatusRunning)
	f.StopHeartbeat(vm.Worker)
	_, err = c.PortForward(ctx, "silent", 22, time.Second)
	if !errors.Is(err, orchard.ErrUnavailable) || !errors.As(err, &ae) || ae.Message != "" {
		t.Fatalf("disconnected worker: %v", err)
	}
}

func waitStatus(t *testing.T, c *orchard.Client, name, status string) orchard.VM {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		vm, err := c.GetVM(context.Background(), name)
		if err == nil && vm.Status == status {
			return vm
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %s never %s: %+v %v", name, status, vm, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseAddress(t *testing.T) {
	name, port, err := orchard.ParseAddress(net.JoinHostPort(orchard.AddressPrefix+"tarty-a-0011aabb", "22"))
	if err != nil || name != "tarty-a-0011aabb" || port != 22 {
		t.Fatalf("= %q %d %v", name, port, err)
	}
	for _, bad := range []string{"10.0.0.1:22", "[orchard-vm:]:22", "[orchard-vm:x]:0", "orchard-vm:x"} {
		if _, _, err := orchard.ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) accepted", bad)
		}
	}
}

package tartvm_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	v, err := c.Version(ctx)
	if err != nil || v != "2.32.1" {
		t.Fatalf("Version = %q, %v; want 2.32.1", v, err)
	}
	env.SetConfig(faketart.Config{Version: "2.29.0"})
	if v, _ := c.Version(ctx); v != "2.29.0" {
		t.Errorf("Version = %q after config change, want 2.29.0", v)
	}
	if got := env.Args("--version"); len(got) != 2 || !slices.Equal(got[0], []string{"--version"}) {
		t.Errorf("calls = %v", got)
	}
}

func TestLifecycleVerbs(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("runner-image", faketart.VMOptions{CPU: 4, MemoryMB: 8192, DiskGB: 60})
	env.Seed("linux-image", faketart.VMOptions{OS: "linux"})

	if err := c.Clone(ctx, "runner-image", "tarty-a"); err != nil {
		t.Fatalf("Clone: %v", err)
	}
	if got := env.Args("clone"); len(got) != 1 || !slices.Equal(got[0], []string{"clone", "runner-image", "tarty-a"}) {
		t.Errorf("clone calls = %v", got)
	}
	if got := env.Args("list"); len(got) != 1 || !slices.Equal(got[0], []string{"list", "--source", "local", "--format", "json"}) {
		t.Errorf("Clone must check the list first; list calls = %v", got)
	}

	if err := c.Set(ctx, "tarty-a", 3, 6144); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := c.Set(ctx, "tarty-a", 0, 0); err != nil {
		t.Fatalf("Set without sizes: %v", err)
	}
	wantSet := [][]string{
		{"set", "tarty-a", "--random-mac", "--cpu", "3", "--memory", "6144"},
		{"set", "tarty-a", "--random-mac"},
	}
	if got := env.Args("set"); !slices.EqualFunc(got, wantSet, slices.Equal) {
		t.Errorf("set calls = %v, want %v", got, wantSet)
	}

	cfg, err := c.Get(ctx, "tarty-a")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := tartvm.VMConfig{OS: "darwin", CPU: 3, Memory: 6144, Disk: 60, DiskFormat: "raw", Size: "0.000",
		Display: "1024x768", Running: false, State: "stopped"}
	if cfg != want {
		t.Errorf("Get = %+v, want %+v", cfg, want)
	}
	if os, err := c.OS(ctx, "linux-image"); err != nil || os != "linux" {
		t.Errorf("OS(linux-image) = %q, %v", os, err)
	}

	if err := c.Rename(ctx, "tarty-a", "tarty-b"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	states, err := c.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	wantStates := map[string]string{"runner-image": "stopped", "linux-image": "stopped", "tarty-b": "stopped"}
	if !mapsEqual(states, wantStates) {
		t.Errorf("States = %v, want %v", states, wantStates)
	}

	if err := c.Delete(ctx, "tarty-b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Delete(ctx, "tarty-b"); err != nil {
		t.Errorf("Delete of a missing VM = %v, want nil", err)
	}
	if got := env.Args("delete"); len(got) != 2 || !slices.Equal(got[0], []string{"delete", "tarty-b"}) {
		t.Errorf("delete calls = %v", got)
	}
	vms, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		if vm.Name == "tarty-b" {
			t.Errorf("tarty-b still listed after Delete")
		}
		if !vm.Local() || vm.Accessed.IsZero() || vm.Disk == 0 {
			t.Errorf("List entry %+v: want local, with Accessed and Disk", vm)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCloneRefusesExistingName(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("image", faketart.VMOptions{})
	env.Seed("tarty-a", faketart.VMOptions{CPU: 6})

	err := c.Clone(ctx, "image", "tarty-a")
	if !errors.Is(err, tartvm.ErrExists) {
		t.Fatalf("Clone onto an existing VM = %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), "tart clone tarty-a:") {
		t.Errorf("error %q does not name the operation", err)
	}
	if got := env.Args("clone"); len(got) != 0 {
		t.Errorf("tart clone was invoked (it would overwrite): %v", got)
	}
	if cfg, _ := c.Get(ctx, "tarty-a"); cfg.CPU != 6 {
		t.Errorf("existing VM changed: %+v", cfg)
	}
}

func TestCloneFromOCICache(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.SeedOCI("ghcr.io/cirruslabs/macos-tahoe-base:latest", faketart.VMOptions{})
	if err := c.Clone(ctx, "ghcr.io/cirruslabs/macos-tahoe-base:latest", "tarty-a"); err != nil {
		t.Fatal(err)
	}
	if os, err := c.OS(ctx, "tarty-a"); err != nil || os != "darwin" {
		t.Errorf("OS = %q, %v", os, err)
	}
	// List asks for local VMs only: the OCI cache entry is not a VM.
	states, err := c.States(ctx)
	if err != nil || len(states) != 1 || states["tarty-a"] != "stopped" {
		t.Errorf("States = %v, %v", states, err)
	}
}

// TestErrorMapping checks exit codes and texts of the fake map to *Error and
// its classifiers.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.Seed("image", faketart.VMOptions{})
	env.Seed("taken", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{
		{Verb: "clone", NamePrefix: "broken-", Fail: "Error: failed to fetch: 503 Service Unavailable"},
		{Verb: "set", NamePrefix: "taken", Fail: "VM should have 4 CPU cores at minimum", ExitCode: 1},
	}})

	type classes struct{ notFound, notRunning, alreadyRunning, limit, noIP bool }
	cases := []struct {
		name string
		call func(context.Context) error
		exit int
		text string // exact Error()
		is   classes
	}{
		{"get missing", func(ctx context.Context) error { _, err := c.Get(ctx, "nope"); return err },
			2, `tart get nope: exit 2: the specified VM "nope" does not exist`, classes{notFound: true}},
		{"os missing", func(ctx context.Context) error { _, err := c.OS(ctx, "nope"); return err },
			2, `tart get nope: exit 2: the specified VM "nope" does not exist`, classes{notFound: true}},
		{"ip missing", func(ctx context.Context) error { _, err := c.IP(ctx, "nope", 0); return err },
			2, `tart ip nope: exit 2: the specified VM "nope" does not exist`, classes{notFound: true}},
		{"set missing", func(ctx context.Context) error { return c.Set(ctx, "nope", 2, 0) },
			2, `tart set nope: exit 2: the specified VM "nope" does not exist`, classes{notFound: true}},
		{"rename missing", func(ctx context.Context) error { return c.Rename(ctx, "nope", "other") },
			64, `tart rename nope: exit 64: Error: failed to rename a non-existent local VM: nope`, classes{notFound: true}},
		{"rename onto existing", func(ctx context.Context) error { return c.Rename(ctx, "image", "taken") },
			64, `tart rename image: exit 64: Error: failed to rename VM image, target VM taken already exists, delete it first!`, classes{}},
		{"clone missing source", func(ctx context.Context) error { return c.Clone(ctx, "nope", "x") },
			2, `tart clone x: exit 2: the specified VM "nope" does not exist`, classes{notFound: true}},
		{"clone fault", func(ctx context.Context) error { return c.Clone(ctx, "image", "broken-1") },
			1, `tart clone broken-1: exit 1: Error: failed to fetch: 503 Service Unavailable`, classes{}},
		{"set fault", func(ctx context.Context) error { return c.Set(ctx, "taken", 1, 0) },
			1, `tart set taken: exit 1: VM should have 4 CPU cores at minimum`, classes{}},
		{"ip not running", func(ctx context.Context) error { _, err := c.IP(ctx, "image", 0); return err },
			1, `tart ip image: exit 1: no IP address found, is your VM running?`, classes{noIP: true}},
		{"run missing", func(ctx context.Context) error { _, err := c.Run(ctx, "nope"); return err },
			1, `tart run nope: exit 1: Error: the specified VM "nope" does not exist`, classes{notFound: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(testCtx(t))
			var te *tartvm.Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v (%T), want *tartvm.Error", err, err)
			}
			if te.ExitCode != tc.exit || err.Error() != tc.text {
				t.Errorf("err = %q (exit %d), want %q (exit %d)", err, te.ExitCode, tc.text, tc.exit)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.exit {
				t.Errorf("errors.As(*exec.ExitError) failed or wrong code: %v", ee)
			}
			got := classes{tartvm.NotFound(err), tartvm.NotRunning(err), tartvm.AlreadyRunning(err), tartvm.VMLimit(err), tartvm.NoIP(err)}
			if got != tc.is {
				t.Errorf("classes = %+v, want %+v", got, tc.is)
			}
			if got.notFound != te.NotFound() || got.limit != te.VMLimit() {
				t.Errorf("methods disagree with package funcs")
			}
		})
	}
}

func TestStopAndDeleteTolerateAbsence(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	env.Seed("stopped", faketart.VMOptions{})
	if err := c.Stop(ctx, "stopped", 5*time.Second); err != nil {
		t.Errorf("Stop(not running) = %v, want nil", err)
	}
	if err := c.Stop(ctx, "missing", 1500*time.Millisecond); err != nil {
		t.Errorf("Stop(missing) = %v, want nil", err)
	}
	if err := c.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	want := [][]string{{"stop", "--timeout", "5", "stopped"}, {"stop", "--timeout", "2", "missing"}}
	if got := env.Args("stop"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("stop calls = %v, want %v", got, want)
	}
	if calls := env.Calls(); calls[0].Exit != 2 || calls[1].Exit != 2 {
		t.Errorf("fake exits = %d, %d; want 2 (not running, missing)", calls[0].Exit, calls[1].Exit)
	}
}

func TestHungVerbCutOffByContext(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "list", Hang: true}}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.List(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("List = %v, want a deadline error", err)
	}
	if !strings.HasPrefix(err.Error(), "tart list: context deadline exceeded") {
		t.Errorf("error text %q", err)
	}
	// tart got SIGINT first (and, like tart, exited on it).
	if calls := env.Calls(); len(calls) != 2 || !calls[0].Hung || !calls[1].Interrupted {
		t.Errorf("calls = %+v, want a hung list, then interrupted", calls)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/nonexistent/bin/tart", "tarty-test-no-such-tart"} {
		c := tartvm.New(tartvm.Options{Path: path, LogDir: t.TempDir()})
		ctx := testCtx(t)
		_, err := c.Version(ctx)
		if !tartvm.NotInstalled(err) || !strings.Contains(err.Error(), "brew install cirruslabs/cli/tart") {
			t.Errorf("Version with %s = %v, want a not-installed error with the brew hint", path, err)
		}
		_, err = c.Run(ctx, "vm")
		if !tartvm.NotInstalled(err) || !strings.Contains(err.Error(), "brew install cirruslabs/cli/tart") {
			t.Errorf("Run with %s = %v, want a not-installed error with the brew hint", path, err)
		}
	}
}

// TestTartHome checks Home wins over the environment and "" inherits it.
func TestTartHome(t *testing.T) {
	env1 := tarttest.New(t)
	env2 := tarttest.New(t)
	env1.Seed("in-one", faketart.VMOptions{})
	env2.Seed("in-two", faketart.VMOptions{})
	ctx := testCtx(t)

	t.Setenv("TART_HOME", env1.Home)
	inherit := tartvm.New(tartvm.Options{Path: env1.Bin})
	explicit := tartvm.New(tartvm.Options{Path: env1.Bin, Home: env2.Home})
	if s, err := inherit.States(ctx); err != nil || s["in-one"] == "" || len(s) != 1 {
		t.Errorf("inherited TART_HOME: %v, %v", s, err)
	}
	if s, err := explicit.States(ctx); err != nil || s["in-two"] == "" || len(s) != 1 {
		t.Errorf("explicit Home: %v, %v", s, err)
	}
}

func TestInvalidNamesNeverReachTart(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	for _, name := range []string{"", "-rf", "../x", "a/b"} {
		if err := c.Delete(ctx, name); err == nil {
			t.Errorf("Delete(%q) = nil", name)
		}
		if _, err := c.Run(ctx, name); err == nil {
			t.Errorf("Run(%q) = nil", name)
		}
	}
	if calls := env.Calls(); len(calls) != 0 {
		t.Errorf("tart invoked: %+v", calls)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]tartvm.Version{
		"2.32.1":     {Major: 2, Minor: 32, Patch: 1},
		"2.10.0\n":   {Major: 2, Minor: 10},
		"v2.9":       {Major: 2, Minor: 9},
		"2.33.0-rc1": {Major: 2, Minor: 33},
		"SNAPSHOT":   {Snapshot: true},
	} {
		if got, err := tartvm.ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tart", "2", "2.x.1", "1.2.3.4"} {
		if v, err := tartvm.ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %+v, want an error", in, v)
		}
	}
	if !(tartvm.Version{Major: 2, Minor: 9, Patch: 1}).Less(tartvm.MinVersion) || tartvm.MinVersion.Less(tartvm.Version{Major: 2, Minor: 10}) ||
		(tartvm.Version{Major: 3}).Less(tartvm.MinVersion) {
		t.Error("Less")
	}
}

// TestCheckVersion: tart below 2.10.0 lacks `set --random-mac`; the error
// names the version found and the one needed, and carries a host fix.
func TestCheckVersion(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	for _, ok := range []string{"2.32.1", "2.10.0", "3.0.0", "SNAPSHOT"} {
		env.SetConfig(faketart.Config{Version: ok})
		if v, err := c.CheckVersion(ctx); err != nil || v != ok {
			t.Errorf("tart %s: %v, %v", ok, v, err)
		}
	}
	for _, old := range []string{"2.9.1", "1.12.1"} {
		env.SetConfig(faketart.Config{Version: old})
		_, err := c.CheckVersion(ctx)
		var ve *tartvm.VersionError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "tart "+old+" is too old") ||
			!strings.Contains(err.Error(), "2.10.0 or newer") {
			t.Errorf("tart %s: %v", old, err)
		}
		if fix, ok := tarty.HostFix(err); !ok || !strings.Contains(fix, "brew upgrade") {
			t.Errorf("HostFix = %q", fix)
		}
	}
	env.SetConfig(faketart.Config{Version: "unknown"})
	if _, err := c.CheckVersion(ctx); err == nil {
		t.Error("unreadable version accepted")
	}
}

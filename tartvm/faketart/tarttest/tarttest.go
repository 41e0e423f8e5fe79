// Package tarttest builds the fake tart executable for tests and gives each test
// its own TART_HOME with helpers to seed images, inject faults, power guests
// off and read the invocation log. Every fake process of a test's TART_HOME is
// killed at the test's cleanup.
//
//	env := tarttest.New(t)
//	env.Seed("runner-image", faketart.VMOptions{})
//	c := tartvm.New(tartvm.Options{Path: env.Bin, Home: env.Home})
//
// The binary is built once per test binary into a temporary directory; call
// Cleanup from TestMain after m.Run to remove it.
package tarttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tartyci/tarty/tartvm/faketart"
)

const pkg = "github.com/tartyci/tarty/tartvm/faketart/cmd/tart"

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
	buildOut  []byte
)

// Build compiles the fake tart once per test binary and returns its path.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "faketart-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "tart")
		cmd := exec.Command(goTool(), "build", "-o", buildBin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building fake tart: %v\n%s", buildErr, buildOut)
	}
	return buildBin
}

// Cleanup removes the binary Build made. Call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// Env is one test's fake tart: the binary and a private TART_HOME.
type Env struct {
	t    testing.TB
	Bin  string // the fake tart executable
	Home string // TART_HOME
}

// New builds the fake (once) and gives the test an empty TART_HOME whose fake
// processes are killed when the test ends.
func New(t testing.TB) *Env {
	t.Helper()
	e := &Env{t: t, Bin: Build(t), Home: t.TempDir()}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if err := faketart.KillAll(e.Home, 10*time.Second); err != nil {
			t.Errorf("cleaning up fake VMs: %v", err)
		}
	})
	return e
}

// Environ is TART_HOME=Home, for running the fake directly.
func (e *Env) Environ() []string { return []string{"TART_HOME=" + e.Home} }

// Seed creates a stopped local VM.
func (e *Env) Seed(name string, o faketart.VMOptions) {
	e.t.Helper()
	if err := faketart.SeedVM(e.Home, name, o); err != nil {
		e.t.Fatal(err)
	}
}

// SeedOCI creates a cached OCI image.
func (e *Env) SeedOCI(ref string, o faketart.VMOptions) {
	e.t.Helper()
	if err := faketart.SeedOCI(e.Home, ref, o); err != nil {
		e.t.Fatal(err)
	}
}

// SeedRemote puts an image in the fake registry, for `pull` and `clone`.
func (e *Env) SeedRemote(ref string, o faketart.VMOptions) {
	e.t.Helper()
	if err := faketart.SeedRemote(e.Home, ref, o); err != nil {
		e.t.Fatal(err)
	}
}

// RemoveDisk leaves local VM name without its disk.img.
func (e *Env) RemoveDisk(name string) {
	e.t.Helper()
	if err := faketart.RemoveDisk(e.Home, name); err != nil {
		e.t.Fatal(err)
	}
}

// LiveProcs returns the pids of the fake's processes still alive (running
// VMs, hung verbs, the children they spawned).
func (e *Env) LiveProcs() []int {
	e.t.Helper()
	pids, err := faketart.LiveProcs(e.Home)
	if err != nil {
		e.t.Fatal(err)
	}
	return pids
}

// WaitNoProcs polls until no fake process of this home is alive, failing
// the test after timeout.
func (e *Env) WaitNoProcs(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := e.LiveProcs()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fake tart processes %v still alive after %v", pids, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SetConfig replaces the fake's configuration (faults, IP, boot delay, limit).
func (e *Env) SetConfig(c faketart.Config) {
	e.t.Helper()
	if err := faketart.WriteConfig(e.Home, c); err != nil {
		e.t.Fatal(err)
	}
}

// Calls returns the invocation log.
func (e *Env) Calls() []faketart.Call {
	e.t.Helper()
	calls, err := faketart.ReadCalls(e.Home)
	if err != nil {
		e.t.Fatal(err)
	}
	return calls
}

// Args returns the arguments of every logged call of verb, oldest first.
func (e *Env) Args(verb string) [][]string {
	e.t.Helper()
	var out [][]string
	for _, c := range e.Calls() {
		if len(c.Args) > 0 && c.Args[0] == verb {
			out = append(out, slices.Clone(c.Args))
		}
	}
	return out
}

// PowerOff shuts the guest of a running VM down from inside.
func (e *Env) PowerOff(name string) {
	e.t.Helper()
	if err := faketart.PowerOff(e.Home, name); err != nil {
		e.t.Fatal(err)
	}
}

// RunningPID is the pid of the VM's `tart run`, 0 when it is not running.
func (e *Env) RunningPID(name string) int {
	e.t.Helper()
	pid, err := faketart.RunningPID(e.Home, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return pid
}

// WaitRunning polls until the VM runs (want true) or stops (false), failing
// the test after timeout. It returns the running pid (0 for stopped).
func (e *Env) WaitRunning(name string, want bool, timeout time.Duration) int {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pid := e.RunningPID(name)
		if (pid != 0) == want {
			return pid
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("VM %q running=%v after %v, want %v", name, pid != 0, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

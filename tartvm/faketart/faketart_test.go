package faketart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	tarttest.Cleanup()
	os.Exit(code)
}

// tart runs the fake in-process against home.
func tart(home string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "TART_HOME" {
			return home
		}
		return ""
	}
	code = faketart.Main(args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

func seed(t *testing.T, home, name string, o faketart.VMOptions) {
	t.Helper()
	if err := faketart.SeedVM(home, name, o); err != nil {
		t.Fatal(err)
	}
}

// setAccessed pins the Accessed date, which the fake keeps as nvram.bin's mtime.
func setAccessed(t *testing.T, dir string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, "nvram.bin"), when, when); err != nil {
		t.Fatal(err)
	}
}

func TestListJSONLayout(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	when := time.Date(2026, 5, 12, 9, 14, 3, 0, time.UTC)
	seed(t, home, "b-vm", faketart.VMOptions{DiskGB: 20})
	seed(t, home, "a-vm", faketart.VMOptions{OS: "linux", DiskGB: 10})
	if err := faketart.SeedOCI(home, "ghcr.io/cirruslabs/macos-tahoe-base:latest", faketart.VMOptions{}); err != nil {
		t.Fatal(err)
	}
	setAccessed(t, filepath.Join(home, "vms", "a-vm"), when)
	setAccessed(t, filepath.Join(home, "vms", "b-vm"), when)
	setAccessed(t, filepath.Join(home, "cache", "OCIs", "ghcr.io", "cirruslabs", "macos-tahoe-base", "latest"), when)

	code, out, errOut := tart(home, "list", "--format", "json")
	want := `[
  {
    "Source" : "local",
    "Name" : "a-vm",
    "Disk" : 10,
    "Size" : 0,
    "Accessed" : "2026-05-12T09:14:03Z",
    "Running" : false,
    "State" : "stopped"
  },
  {
    "Source" : "local",
    "Name" : "b-vm",
    "Disk" : 20,
    "Size" : 0,
    "Accessed" : "2026-05-12T09:14:03Z",
    "Running" : false,
    "State" : "stopped"
  },
  {
    "Source" : "OCI",
    "Name" : "ghcr.io\/cirruslabs\/macos-tahoe-base:latest",
    "Disk" : 50,
    "Size" : 0,
    "Accessed" : "2026-05-12T09:14:03Z",
    "Running" : false,
    "State" : "stopped"
  }
]
`
	if code != 0 || out != want || errOut != "" {
		t.Errorf("list json: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
	var parsed []map[string]any
	if err := json.Unmarshal([]byte(out), &parsed); err != nil || parsed[2]["Name"] != "ghcr.io/cirruslabs/macos-tahoe-base:latest" {
		t.Errorf("output is not the JSON it looks like: %v", err)
	}

	if code, out, _ := tart(home, "list", "--source", "local", "-q"); code != 0 || out != "a-vm\nb-vm\n" {
		t.Errorf("list -q: %d %q", code, out)
	}
	if code, out, _ := tart(home, "list", "--source", "oci", "--quiet"); code != 0 || out != "ghcr.io/cirruslabs/macos-tahoe-base:latest\n" {
		t.Errorf("list --source oci -q: %d %q", code, out)
	}
	if code, out, _ := tart(t.TempDir(), "list", "--format", "json"); code != 0 || out != "[\n\n]\n" {
		t.Errorf("empty list: %d %q", code, out)
	}
	code, out, _ = tart(home, "list", "--source", "local")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "Source") || strings.Contains(lines[0], "Running") {
		t.Errorf("list text: %d\n%s", code, out)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	seed(t, home, "vm", faketart.VMOptions{OS: "linux", CPU: 2, MemoryMB: 2048, DiskGB: 30})
	code, out, _ := tart(home, "get", "vm", "--format", "json")
	want := `{
  "OS" : "linux",
  "CPU" : 2,
  "Memory" : 2048,
  "Disk" : 30,
  "DiskFormat" : "raw",
  "Size" : "0.000",
  "Display" : "1024x768",
  "Running" : false,
  "State" : "stopped"
}
`
	if code != 0 || out != want {
		t.Errorf("get json: %d\n%s", code, out)
	}
	if code, out, _ := tart(home, "get", "vm"); code != 0 || !strings.HasPrefix(out, "OS ") || !strings.Contains(out, "linux") {
		t.Errorf("get text: %d\n%s", code, out)
	}
}

// TestErrors pins tart's messages and exit codes.
func TestErrors(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	seed(t, home, "vm", faketart.VMOptions{})
	seed(t, home, "other", faketart.VMOptions{})
	seed(t, home, "lin", faketart.VMOptions{OS: "linux", MemoryMB: 1024})
	seed(t, home, "nodisk", faketart.VMOptions{})
	if err := faketart.RemoveDisk(home, "nodisk"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args   []string
		code   int
		stderr string // first line
	}{
		{[]string{"get", "nope"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"set", "nope", "--cpu", "2"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"ip", "nope"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"stop", "nope"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"delete", "nope"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"clone", "nope", "x"}, 2, `the specified VM "nope" does not exist`},
		{[]string{"run", "nope"}, 1, `Error: the specified VM "nope" does not exist`},
		{[]string{"stop", "vm"}, 2, `VM "vm" is not running`},
		{[]string{"ip", "vm", "--wait", "0"}, 1, `no IP address found, is your VM running?`},
		{[]string{"rename", "nope", "x"}, 64, `Error: failed to rename a non-existent local VM: nope`},
		{[]string{"rename", "vm", "other"}, 64, `Error: failed to rename VM vm, target VM other already exists, delete it first!`},
		{[]string{"clone", "vm", "a/b"}, 64, `Error: <new-name> should be a local name`},
		{[]string{"clone", "vm", "x", "--concurrency", "0"}, 64, `Error: The value '0' is invalid for '--concurrency <concurrency>'`},
		{[]string{"list", "--source", "remote"}, 64, `Error: 'remote' is not a valid <source>`},
		{[]string{"list", "--format", "yaml"}, 64, `Error: The value 'yaml' is invalid for '--format <format>'`},
		{[]string{"stop", "vm", "--timeout"}, 64, `Error: Missing value for '--timeout <timeout>'`},
		{[]string{"stop"}, 64, `Error: Missing expected argument '<name>'`},
		{[]string{"ip", "vm", "--bogus"}, 64, `Error: Unknown option '--bogus'`},
		{[]string{"run", "vm", "--graphics", "--no-graphics"}, 64, `Error: --graphics and --no-graphics are mutually exclusive`},
		{[]string{"set", "vm", "--cpu", "1"}, 1, `Error: LessThanMinimalResourcesError: VM should have 2 CPU cores at minimum (requested 1)`},
		{[]string{"set", "vm", "--cpu", "0"}, 1, `Error: LessThanMinimalResourcesError: VM should have 2 CPU cores at minimum (requested 0)`},
		{[]string{"set", "lin", "--cpu", "0"}, 1, `Error: LessThanMinimalResourcesError: VM should have 1 CPU cores at minimum (requested 0)`},
		{[]string{"set", "vm", "--memory", "1024"}, 1, `Error: LessThanMinimalResourcesError: VM should have 4294967296 bytes of memory at minimum (requested 1073741824)`},
		{[]string{"set", "lin", "--memory", "64"}, 1, `Error: LessThanMinimalResourcesError: VM should have 134217728 bytes of memory at minimum (requested 67108864)`},
		// A directory without its disk: tart's VMMissingFiles, exit 1.
		{[]string{"get", "nodisk"}, 1, `VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"ip", "nodisk"}, 1, `VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"set", "nodisk", "--random-mac"}, 1, `VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"stop", "nodisk"}, 1, `VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"clone", "nodisk", "x"}, 1, `VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"run", "nodisk"}, 1, `Error: VM is missing some of its files (config.json, disk.img or nvram.bin)`},
		{[]string{"rename", "nodisk", "x"}, 64, `Error: failed to rename a non-existent local VM: nodisk`},
		{[]string{"pull", "vm"}, 0, ``},
		{[]string{"pull", "ghcr.io/org/missing:v1"}, 1, `Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}")`},
		{[]string{"frobnicate"}, 64, `Error: Unexpected argument 'frobnicate'`},
	}
	if code, _, e := tart("", "list"); code != 1 || !strings.Contains(e, "TART_HOME must be set") {
		t.Errorf("without TART_HOME: %d %q", code, e)
	}
	for _, tc := range cases {
		code, _, errOut := tart(home, tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != tc.code || first != tc.stderr {
			t.Errorf("tart %v: exit %d %q, want %d %q", tc.args, code, first, tc.code, tc.stderr)
		}
		if code == 64 && tc.args[0] != "frobnicate" && !strings.Contains(errOut, "Usage: tart "+tc.args[0]) {
			t.Errorf("tart %v: no usage in %q", tc.args, errOut)
		}
	}
}

func macOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		MAC string `json:"macAddress"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.MAC
}

func TestCloneSetRenameDelete(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	vms := filepath.Join(home, "vms")
	seed(t, home, "image", faketart.VMOptions{MAC: "0e:00:00:00:00:01", DiskGB: 40})
	oci := "ghcr.io/org/img:v1"
	if err := faketart.SeedOCI(home, oci, faketart.VMOptions{MAC: "0e:00:00:00:00:02"}); err != nil {
		t.Fatal(err)
	}

	if code, _, e := tart(home, "clone", "image", "a"); code != 0 {
		t.Fatalf("clone: %d %s", code, e)
	}
	// A local source's MAC is taken, so the clone gets a new one; the first
	// clone of an OCI image keeps the image's.
	if macOf(t, filepath.Join(vms, "a")) == "0e:00:00:00:00:01" {
		t.Error("clone of a local VM kept its MAC")
	}
	if code, _, e := tart(home, "clone", oci, "b"); code != 0 {
		t.Fatalf("clone oci: %d %s", code, e)
	}
	if got := macOf(t, filepath.Join(vms, "b")); got != "0e:00:00:00:00:02" {
		t.Errorf("first clone of an OCI image has MAC %s", got)
	}
	if code, _, e := tart(home, "clone", "ghcr.io/org/img:v2", "c"); code != 1 || !strings.Contains(e, "code: 404") {
		t.Errorf("clone of an OCI image in no registry: %d %q", code, e)
	}

	// tart overwrites silently.
	if code, _, _ := tart(home, "set", "a", "--cpu", "7"); code != 0 {
		t.Fatal("set")
	}
	if code, _, _ := tart(home, "clone", "image", "a"); code != 0 {
		t.Fatal("clone over existing")
	}
	if _, out, _ := tart(home, "get", "a", "--format", "json"); !strings.Contains(out, `"CPU" : 4`) {
		t.Errorf("clone did not overwrite: %s", out)
	}

	mac := macOf(t, filepath.Join(vms, "a"))
	if code, _, _ := tart(home, "set", "a", "--cpu", "3", "--memory", "6144", "--random-mac", "--display", "1920x1080pt", "--disk-size", "60"); code != 0 {
		t.Fatal("set")
	}
	_, out, _ := tart(home, "get", "a", "--format", "json")
	for _, want := range []string{`"CPU" : 3`, `"Memory" : 6144`, `"Display" : "1920x1080pt"`, `"Disk" : 60`} {
		if !strings.Contains(out, want) {
			t.Errorf("get after set lacks %s:\n%s", want, out)
		}
	}
	if macOf(t, filepath.Join(vms, "a")) == mac {
		t.Error("--random-mac kept the MAC")
	}
	if code, _, e := tart(home, "set", "a", "--disk-size", "10"); code != 1 || !strings.Contains(e, "should be larger") {
		t.Errorf("shrinking the disk: %d %q", code, e)
	}

	if code, _, _ := tart(home, "rename", "a", "z"); code != 0 {
		t.Fatal("rename")
	}
	if code, _, e := tart(home, "delete", "b", "z", oci); code != 0 {
		t.Fatalf("delete several: %d %s", code, e)
	}
	if _, out, _ := tart(home, "list", "-q"); out != "image\n" {
		t.Errorf("left after delete: %q", out)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	seed(t, home, "image", faketart.VMOptions{})
	if err := faketart.WriteConfig(home, faketart.Config{Faults: []faketart.Fault{
		{Verb: "clone", NamePrefix: "tarty-", Times: 2, Fail: "Error: network is down", ExitCode: 1},
		{Verb: "get", Fail: "custom", ExitCode: 3},
	}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 1, 0} {
		code, _, e := tart(home, "clone", "image", "tarty-x")
		if code != want {
			t.Errorf("clone #%d: exit %d (%q), want %d", i+1, code, e, want)
		}
	}
	if code, _, _ := tart(home, "clone", "image", "other"); code != 0 {
		t.Errorf("prefix did not limit the fault")
	}
	if code, _, e := tart(home, "get", "image"); code != 3 || e != "custom\n" {
		t.Errorf("get fault: %d %q", code, e)
	}
	// Rewriting the config resets the counters.
	if err := faketart.WriteConfig(home, faketart.Config{Faults: []faketart.Fault{
		{Verb: "clone", Times: 1, Fail: "again"},
	}}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := tart(home, "clone", "image", "tarty-y"); code != 1 {
		t.Errorf("counter not reset")
	}

	calls, err := faketart.ReadCalls(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 6 || strings.Join(calls[0].Args, " ") != "clone image tarty-x" || calls[0].Exit != 1 || calls[2].Exit != 0 ||
		calls[0].PID != os.Getpid() || calls[0].Time.IsZero() {
		t.Errorf("invocation log = %+v", calls)
	}
}

// TestProcesses drives the built executable: hung verbs and running VMs are
// killed by KillAll, and a VM whose TART_HOME disappears stops by itself.
func TestProcesses(t *testing.T) {
	t.Parallel()
	env := tarttest.New(t)
	env.Seed("vm", faketart.VMOptions{})
	env.SetConfig(faketart.Config{Faults: []faketart.Fault{{Verb: "list", Hang: true}}})

	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command(env.Bin, args...)
		cmd.Env = append(os.Environ(), env.Environ()...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	run := start("run", "--no-graphics", "vm")
	hung := start("list")
	pid := env.WaitRunning("vm", true, 10*time.Second)
	if pid != run.Process.Pid {
		t.Errorf("running pid %d, started %d", pid, run.Process.Pid)
	}
	// Wait for the hang to be logged so KillAll can see it.
	deadline := time.Now().Add(10 * time.Second)
	for len(env.Args("list")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("hung list never logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := faketart.KillAll(env.Home, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []*exec.Cmd{run, hung} {
		if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != -1 {
			t.Errorf("%v: %v, want killed", cmd.Args, err)
		}
	}
	env.WaitRunning("vm", false, time.Second)

	home := t.TempDir()
	if err := faketart.SeedVM(home, "vm", faketart.VMOptions{}); err != nil {
		t.Fatal(err)
	}
	orphan := exec.Command(env.Bin, "run", "vm")
	orphan.Env = append(os.Environ(), "TART_HOME="+home)
	var out bytes.Buffer
	orphan.Stderr = &out
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for p, _ := faketart.RunningPID(home, "vm"); p == 0; p, _ = faketart.RunningPID(home, "vm") {
		if time.Now().After(deadline) {
			t.Fatal("orphan run never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.RemoveAll(home); err != nil {
		t.Fatal(err)
	}
	if err := orphan.Wait(); orphan.ProcessState.ExitCode() != 1 || !strings.Contains(out.String(), "vanished") {
		t.Errorf("orphaned run: %v %q", err, out.String())
	}
}

func TestPull(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	const ref = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
	if err := faketart.SeedRemote(home, ref, faketart.VMOptions{DiskGB: 50}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := tart(home, "pull", ref)
	want := "pulling " + ref + "...\npulling manifest...\npulling disk (20.0 GB compressed)...\n" +
		"0%\n10%\n20%\n30%\n40%\n50%\n60%\n70%\n80%\n90%\n100%\npulling NVRAM...\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("pull: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
	if code, out, _ := tart(home, "list", "--source", "oci", "-q"); code != 0 || out != ref+"\n" {
		t.Errorf("cache after pull: %d %q", code, out)
	}
	if code, out, _ := tart(home, "pull", ref); code != 0 || !strings.HasSuffix(out, ref+" image is already cached and linked!\n") {
		t.Errorf("second pull: %d %q", code, out)
	}

	// clone of an OCI image not yet in the cache pulls it first.
	const other = "ghcr.io/org/img:v1"
	if err := faketart.SeedRemote(home, other, faketart.VMOptions{OS: "linux"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = tart(home, "clone", other, "vm")
	if code != 0 || !strings.HasPrefix(out, "pulling manifest...\n") || errOut != "" {
		t.Errorf("clone of an uncached image: %d %q %q", code, out, errOut)
	}
	if _, out, _ := tart(home, "get", "vm", "--format", "json"); !strings.Contains(out, `"OS" : "linux"`) {
		t.Errorf("clone of a pulled image: %s", out)
	}

	// A failing pull stops half-way and leaves nothing behind.
	const broken = "ghcr.io/org/broken:v1"
	if err := faketart.SeedRemote(home, broken, faketart.VMOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := faketart.WriteConfig(home, faketart.Config{Faults: []faketart.Fault{
		{Verb: "pull", NamePrefix: "ghcr.io/org/broken", Fail: "Error: URLError(_nsError: Error Domain=NSURLErrorDomain Code=-1005)"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"pull", broken}, {"clone", broken, "b"}} {
		code, out, errOut = tart(home, args...)
		if code != 1 || !strings.HasSuffix(out, "40%\n") || !strings.HasPrefix(errOut, "Error: URLError") {
			t.Errorf("%v with a failing registry: %d %q %q", args, code, out, errOut)
		}
	}
	if _, out, _ := tart(home, "list", "-q"); strings.Contains(out, "broken") || strings.Contains(out, "b\n") {
		t.Errorf("a failed pull left %q", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(home, "tmp")); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestDeleteAndRenameTakeNoGlobalLock: tart's delete and rename run while
// another command holds TART_HOME's lock (a clone copying, a run starting).
func TestDeleteAndRenameTakeNoGlobalLock(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	seed(t, home, "a", faketart.VMOptions{})
	seed(t, home, "b", faketart.VMOptions{})
	dir, err := os.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 2)
	go func() {
		code, _, e := tart(home, "rename", "a", "c")
		done <- fmt.Sprintf("rename %d %s", code, e)
	}()
	go func() {
		code, _, e := tart(home, "delete", "b")
		done <- fmt.Sprintf("delete %d %s", code, e)
	}()
	for range 2 {
		select {
		case r := <-done:
			if !strings.HasSuffix(r, " 0 ") {
				t.Errorf("%s", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("delete or rename waited for the global lock")
		}
	}
	if _, out, _ := tart(home, "list", "-q"); out != "c\n" {
		t.Errorf("after rename and delete: %q", out)
	}
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/internal/syncbuf"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

// e2e is one process-level setup: the real tarty binary, the fake tart, the
// fake GitHub API and a real OpenSSH sshd standing in for the guests, whose
// ~/actions-runner/run.sh is the fake runner (it takes the JIT config from
// ACTIONS_RUNNER_INPUT_JITCONFIG as the real runner does and never reads
// stdin), and whose shutdown command powers the fake VM off.
type e2e struct {
	t       *testing.T
	dir     string
	tart    *tarttest.Env
	gh      *fakegithub.Server
	sshd    *sshdtest.Server
	config  string
	admin   string
	secret  string
	prefix  string
	workDir string

	hookPort int // server.listen's port, where the fake GitHub delivers
}

var (
	buildTartyOnce sync.Once
	tartyBin       string
	tartyBuildErr  error
	fakeRunnerBin  string
)

// buildBinaries builds tarty and the fake runner once per test binary.
func buildBinaries(t *testing.T) {
	t.Helper()
	buildTartyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tarty-e2e-bin-")
		if err != nil {
			tartyBuildErr = err
			return
		}
		tartyBin = filepath.Join(dir, "tarty")
		fakeRunnerBin = filepath.Join(dir, "fakerunner")
		for _, b := range [][2]string{{tartyBin, "."}, {fakeRunnerBin, "github.com/tartyci/tarty/ghapi/fakegithub/fakerunner/cmd/fakerunner"}} {
			if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
				tartyBuildErr = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if tartyBuildErr != nil {
		t.Fatal(tartyBuildErr)
	}
}

func newE2E(t *testing.T, extraConfig string) *e2e {
	return newE2EPoll(t, "10s", extraConfig)
}

// newE2EBase is what every process-level test shares, whatever its backend:
// the binaries built, a real sshd for the guests whose run.sh is the fake
// runner (its jobs take two seconds), the listeners' ports, and the fake
// GitHub delivering to the webhook port, with repository app. The caller
// writes the config (writeConfig).
func newE2EBase(t *testing.T, prefix string) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level end-to-end test")
	}
	buildBinaries(t)
	e := &e2e{t: t, dir: t.TempDir(), secret: "e2e-webhook-secret-0123456789", prefix: prefix}
	e.sshd = sshdtest.Start(t)

	e.workDir = filepath.Join(e.dir, "actions-runner")
	if err := os.MkdirAll(e.workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	runSh := "#!/bin/sh\nFAKERUNNER_JOB_SECONDS=2 FAKERUNNER_IDLE_SECONDS=120 exec " + fakeRunnerBin + ` "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(e.workDir, "run.sh"), []byte(runSh), 0o755); err != nil {
		t.Fatal(err)
	}

	e.hookPort = sshdtest.FreePort(t)
	e.admin = fmt.Sprintf("127.0.0.1:%d", sshdtest.FreePort(t))
	e.gh = fakegithub.New(fakegithub.Config{
		WebhookURL:    fmt.Sprintf("http://127.0.0.1:%d/github/webhook", e.hookPort),
		WebhookSecret: e.secret,
	})
	t.Cleanup(e.gh.Close)
	e.gh.AddRepo("app")
	return e
}

// writeConfig writes the config every command of e reads.
func (e *e2e) writeConfig(cfg string) {
	e.t.Helper()
	e.config = filepath.Join(e.dir, "tarty.yaml")
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func newE2EPoll(t *testing.T, poll, extraConfig string) *e2e {
	t.Helper()
	e := newE2EBase(t, "tarty-e2e")
	e.tart = tarttest.New(t)
	e.tart.Seed("runner-image", faketart.VMOptions{})
	e.tart.Seed("base-image", faketart.VMOptions{})

	poweroff := filepath.Join(e.tart.Home, "vms")
	cfg := fmt.Sprintf(`github:
  url: %s
  organization: %s
  labels: [tarty]
images:
  base: base-image
  runner: runner-image
ssh:
  user: %s
  port: %d
  key_file: %s
  connect_timeout: 30s
runners:
  max: 2
  name_prefix: %s
  boot_timeout: 60s
  work_dir: %s
  shutdown_command: touch '%s'/"$TARTY_RUNNER_NAME"/poweroff
reconcile:
  interval: %s
server:
  listen: 127.0.0.1:%d
  admin_listen: %s
tart:
  path: %s
  home: %s
log:
  level: debug
  format: json
state_dir: %s
%s`, e.gh.URL(), e.gh.Organization(), e.sshd.User, e.sshd.Port, e.sshd.ClientKey.Private, e.prefix, e.workDir,
		poweroff, poll, e.hookPort, e.admin, e.tart.Bin, e.tart.Home, filepath.Join(e.dir, "state"), extraConfig)
	e.writeConfig(cfg)
	return e
}

func (e *e2e) env() []string {
	return append(os.Environ(), "TARTY_GITHUB_TOKEN="+e.gh.Token(), "TARTY_WEBHOOK_SECRET="+e.secret, "TARTY_CONFIG=")
}

// command runs a tarty CLI command to completion.
func (e *e2e) command(args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(tartyBin, append(args, "--config", e.config)...)
	cmd.Env = e.env()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return code, string(out)
}

// daemonProc is a running `tarty run`.
type daemonProc struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
}

func (e *e2e) start() *daemonProc {
	e.t.Helper()
	d := &daemonProc{log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(tartyBin, "run", "--config", e.config)
	d.cmd.Env = e.env()
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	e.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if e.t.Failed() || os.Getenv("TARTY_E2E_LOG") != "" {
			e.t.Logf("tarty log:\n%s", d.log.String())
		}
	})
	e.waitFor("tarty ready", 60*time.Second, func() bool {
		select {
		case err := <-d.done:
			e.t.Fatalf("tarty exited early: %v\n%s", err, d.log.String())
		default:
		}
		resp, err := http.Get("http://" + e.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// stop sends SIGTERM and returns the exit code, failing after 30 s.
func (e *e2e) stop(d *daemonProc) int {
	e.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("tarty did not exit within 30 s of SIGTERM\n%s", d.log.String())
	}
	return d.cmd.ProcessState.ExitCode()
}

// metrics is the daemon's /metrics.
func (e *e2e) metrics() string {
	e.t.Helper()
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *e2e) waitFor(what string, limit time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vms lists the fake tart's local VMs with the prefix.
func (e *e2e) vms() []string {
	entries, err := os.ReadDir(filepath.Join(e.tart.Home, "vms"))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), e.prefix+"-") {
			out = append(out, de.Name())
		}
	}
	return out
}

func (e *e2e) runners() []string {
	var out []string
	for _, r := range e.gh.Runners() {
		if strings.HasPrefix(r.Name, e.prefix+"-") {
			out = append(out, r.Name)
		}
	}
	return out
}

// serveOneJob queues a job with Tarty's labels and waits until one of
// Tarty's runners completed it, its VM is gone (vms counts Tarty's VMs left
// on the backend) and its runner is removed.
func (e *e2e) serveOneJob(vms func() int) {
	e.t.Helper()
	job := e.gh.QueueJob("app", "self-hosted", "macOS", "tarty")
	e.waitFor("the job completed on one of Tarty's runners", 90*time.Second, func() bool {
		j, _ := e.gh.Job(job.ID)
		return j.Status == "completed" && strings.HasPrefix(j.RunnerName, e.prefix+"-")
	})
	e.waitFor("its VM deleted and its runner gone", 60*time.Second, func() bool {
		return vms() == 0 && len(e.runners()) == 0
	})
}

func TestEndToEndJob(t *testing.T) {
	e := newE2E(t, "rebuild:\n  enabled: false\n")
	d := e.start()

	e.serveOneJob(func() int { return len(e.vms()) })

	// A job whose webhook never arrives is found by the poller.
	e.gh.DropWebhooks(func(fakegithub.Delivery) bool { return true })
	missed := e.gh.QueueJob("app", "tarty")
	e.waitFor("the missed job completed", 90*time.Second, func() bool {
		j, _ := e.gh.Job(missed.ID)
		return j.Status == "completed"
	})

	code, out := e.command("status")
	if code != 0 || !strings.Contains(out, "Tarty: ready") {
		t.Errorf("tarty status = %d:\n%s", code, out)
	}
	if code := e.stop(d); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	log := d.log.String()
	for _, secret := range []string{e.secret, e.gh.Token()} {
		if strings.Contains(log, secret) {
			t.Errorf("a secret appears in the log")
		}
	}
	if !strings.Contains(log, `"job_id"`) || !strings.Contains(log, `"vm"`) {
		t.Errorf("log lines lack vm/job_id fields")
	}
}

// TestIdleDaemonCost measures an idle `tarty run` (default 60 s poll, fakes
// answering at once) for TARTY_IDLE_MEASURE (e.g. 10m): CPU time used and
// resident memory, read from /proc. Linux only; skipped unless asked for.
// See BENCHMARKS.md.
func TestIdleDaemonCost(t *testing.T) {
	span, err := time.ParseDuration(os.Getenv("TARTY_IDLE_MEASURE"))
	if err != nil || span <= 0 {
		t.Skip("set TARTY_IDLE_MEASURE=10m to measure an idle daemon")
	}
	e := newE2EPoll(t, "60s", "rebuild:\n  enabled: false\n")
	d := e.start()
	pid := d.cmd.Process.Pid
	cpu0 := procCPU(t, pid)
	time.Sleep(span)
	cpu := procCPU(t, pid) - cpu0
	rss := procRSS(t, pid)
	t.Logf("idle for %s: CPU %.2fs (%.3f%% of one core), RSS %.1f MiB", span, cpu.Seconds(),
		100*cpu.Seconds()/span.Seconds(), float64(rss)/(1<<20))
	if code := e.stop(d); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// procCPU is the user+system CPU time of pid (clock ticks at 100 Hz).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skip("no /proc:", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procRSS is the resident set size of pid in bytes.
func procRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), &kb)
			return kb << 10
		}
	}
	return 0
}

// TestEndToEndRebuild runs `tarty rebuild` with no daemon against the fake tart
// and a real sshd guest: the build VM, cloned from the base, runs
// rebuild.command over SSH, powers itself off and becomes the runner image;
// the old one is kept as -previous with its host key; `tarty rollback` swaps
// them back.
func TestEndToEndRebuild(t *testing.T) {
	e := newE2E(t, "")
	home := e.tart.Home
	for name, label := range map[string]string{"runner-image": "runner v1", "base-image": "base"} {
		if err := faketart.SetLabel(home, name, label); err != nil {
			t.Fatal(err)
		}
	}
	// The command marks the build VM (the fake's storage stands in for its disk).
	build := fmt.Sprintf(`for d in '%s'/%s-build-*; do case $d in *-verify) ;; *) printf 'runner v2\n' > "$d/%s";; esac; done`,
		faketart.VMsDir(home), e.prefix, faketart.LabelFile)
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("rebuild:\n  command: %q\n  verify_command: \"true\"\n", build)...)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	label := func(name string) string {
		l, err := faketart.Label(home, name)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return l
	}

	code, out := e.command("rebuild")
	if code != 0 || !strings.Contains(out, "rebuilt") {
		t.Fatalf("tarty rebuild = %d:\n%s", code, out)
	}
	if got, prev := label("runner-image"), label("runner-image-previous"); got != "runner v2" || prev != "runner v1" {
		t.Errorf("after the rebuild: runner image %q, previous %q", got, prev)
	}
	if vms := e.vms(); len(vms) != 0 {
		t.Errorf("VMs left: %v", vms)
	}
	hosts, err := os.ReadFile(filepath.Join(e.dir, "state", "known_hosts"))
	// The runner image now trusts the key the build VM presented (the base's);
	// the old image had none yet (no runner VM ever booted from it).
	keyOf := func(image string) string {
		for _, l := range strings.Split(string(hosts), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == image {
				return f[2]
			}
		}
		return ""
	}
	if err != nil || keyOf("runner-image") == "" || keyOf("runner-image") != keyOf("base-image") || keyOf("runner-image-previous") != "" {
		t.Errorf("trusted host keys after the promote:\n%s (%v)", hosts, err)
	}

	code, out = e.command("rollback")
	if code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("tarty rollback = %d:\n%s", code, out)
	}
	if got, prev := label("runner-image"), label("runner-image-previous"); got != "runner v1" || prev != "runner v2" {
		t.Errorf("after the rollback: runner image %q, previous %q", got, prev)
	}
}

// TestEndToEndCLI: the control commands against no daemon (status fails
// clearly; reconcile syncs once, and --dry-run only says what it would do)
// and against a running one (reconcile asks it to poll).
func TestEndToEndCLI(t *testing.T) {
	e := newE2E(t, "rebuild:\n  enabled: false\n")
	code, out := e.command("status")
	if code != 1 || !strings.Contains(out, "no daemon answers") || !strings.Contains(out, "tarty run") {
		t.Errorf("status with no daemon = %d:\n%s", code, out)
	}

	// Leftovers of a daemon that died: a VM and an offline runner with the
	// prefix, and things without it that must never be touched.
	e.tart.Seed(e.prefix+"-deadbeef", faketart.VMOptions{})
	e.tart.Seed("someone-elses-vm", faketart.VMOptions{})
	gone := e.gh.AddRunner("", e.prefix+"-deadbeef", "tarty")
	other := e.gh.AddRunner("", "another-runner", "tarty")
	job := e.gh.QueueJob("app", "self-hosted", "tarty")

	code, out = e.command("reconcile", "--dry-run")
	for _, want := range []string{"would delete VM " + e.prefix + "-deadbeef", "would remove offline runner " + e.prefix + "-deadbeef",
		fmt.Sprint(job.ID)} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile --dry-run lacks %q:\n%s", want, out)
		}
	}
	if code != 0 || len(e.vms()) != 1 || len(e.runners()) != 1 {
		t.Fatalf("reconcile --dry-run = %d changed something: VMs %v, runners %v\n%s", code, e.vms(), e.runners(), out)
	}

	code, out = e.command("reconcile")
	if code != 0 || !strings.Contains(out, "did delete VM "+e.prefix+"-deadbeef") || !strings.Contains(out, fmt.Sprint(job.ID)) {
		t.Errorf("reconcile with no daemon = %d:\n%s", code, out)
	}
	if len(e.vms()) != 0 || len(e.runners()) != 0 {
		t.Errorf("left after the sync: VMs %v, runners %v", e.vms(), e.runners())
	}
	if _, err := os.Stat(filepath.Join(faketart.VMsDir(e.tart.Home), "someone-elses-vm")); err != nil {
		t.Errorf("a VM without the prefix was touched: %v", err)
	}
	found := false
	for _, r := range e.gh.Runners() {
		found = found || r.ID == other.ID
		if r.ID == gone.ID {
			t.Errorf("the offline runner with the prefix is still registered")
		}
	}
	if !found {
		t.Error("a runner without the prefix was removed")
	}

	d := e.start()
	code, out = e.command("reconcile")
	if code != 0 || !strings.Contains(out, "reconcile requested") {
		t.Errorf("reconcile with a daemon = %d:\n%s", code, out)
	}
	if code := e.stop(d); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

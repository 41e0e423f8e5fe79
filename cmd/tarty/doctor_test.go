package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

const (
	doctorPrefix = "tarty-doc"
	doctorSecret = "doctor-test-webhook-secret-0123456789"
	doctorVM     = doctorPrefix + "-doctor-0badcafe"
)

// doctorFixture is a config pointing at the fake tart, the fake GitHub and,
// with ssh, a real sshd standing in for the guest, and the doctorEnv built
// from it as `tarty doctor` builds it, with the host's traits (OS, uid,
// environment, `defaults`) replaced by a healthy macOS host's.
type doctorFixture struct {
	t       *testing.T
	dir     string
	tart    *tarttest.Env
	gh      *fakegithub.Server
	sshd    *sshdtest.Server
	workDir string
	cfg     *config.Config
	env     *doctorEnv
	dflts   string // what `defaults read ... bootpd` prints
}

type fixtureOpts struct {
	ssh    bool              // start a real sshd as the guest
	gh     fakegithub.Config // the fake GitHub
	extra  string            // more YAML, appended
	ghURL  func(*fakegithub.Server) string
	noRun  bool                 // no run.sh in the guest's work_dir
	mutate func(*doctorFixture) // before the env is built
}

func newDoctorFixture(t *testing.T, o fixtureOpts) *doctorFixture {
	t.Helper()
	f := &doctorFixture{t: t, dir: t.TempDir(), dflts: "{\n    DHCPLeaseTimeSecs = 600;\n}\n"}
	f.tart = tarttest.New(t)
	f.tart.Seed("runner-image", faketart.VMOptions{DiskGB: 1})
	f.tart.Seed("base-image", faketart.VMOptions{DiskGB: 1})
	f.gh = fakegithub.New(o.gh)
	t.Cleanup(f.gh.Close)
	f.gh.AddRepo("app")

	f.workDir = filepath.Join(f.dir, "actions-runner")
	if err := os.MkdirAll(f.workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if !o.noRun {
		if err := os.WriteFile(filepath.Join(f.workDir, "run.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sshCfg := "  user: admin\n  password: not-a-real-password\n"
	if o.ssh {
		f.sshd = sshdtest.Start(t)
		sshCfg = fmt.Sprintf("  user: %s\n  port: %d\n  key_file: %s\n", f.sshd.User, f.sshd.Port, f.sshd.ClientKey.Private)
	}
	url := f.gh.URL()
	if o.ghURL != nil {
		url = o.ghURL(f.gh)
	}
	yaml := fmt.Sprintf(`github:
  url: %s
  organization: %s
  token: %s
  webhook_secret: %s
  labels: [tarty]
images:
  base: base-image
  runner: runner-image
ssh:
%s  connect_timeout: 20s
runners:
  name_prefix: %s
  boot_timeout: 60s
  work_dir: %s
rebuild:
  command: ./convert.sh
server:
  listen: 127.0.0.1:%d
  admin_listen: 127.0.0.1:%d
tart:
  path: %s
  home: %s
state_dir: %s
%s`, url, f.gh.Organization(), f.gh.Token(), doctorSecret, sshCfg, doctorPrefix, f.workDir,
		sshdtest.FreePort(t), sshdtest.FreePort(t), f.tart.Bin, f.tart.Home, filepath.Join(f.dir, "state"), o.extra)
	path := filepath.Join(f.dir, "tarty.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, config.Env{Getenv: func(string) string { return "" }, HomeDir: f.dir, Hostname: "mac"})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	f.cfg = cfg
	if o.mutate != nil {
		o.mutate(f)
	}
	f.env = newDoctorEnv(cfg, "test")
	f.env.goos, f.env.uid = "darwin", 501
	f.env.getenv = func(k string) string {
		if k == "HOME" {
			return f.dir
		}
		return ""
	}
	f.env.command = func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name != "defaults" {
			return nil, fmt.Errorf("unexpected command %s", name)
		}
		if strings.Contains(f.dflts, "does not exist") {
			return []byte(f.dflts), errors.New("exit status 1")
		}
		return []byte(f.dflts), nil
	}
	f.env.newName = func() string { return doctorVM }
	f.env.cleanupTimeout = time.Minute
	return f
}

// run runs one check, ignoring what it needs.
func (f *doctorFixture) run(id string) checkResult {
	f.t.Helper()
	return f.runCtx(context.Background(), id)
}

func (f *doctorFixture) runCtx(ctx context.Context, id string) checkResult {
	f.t.Helper()
	for _, c := range doctorChecks() {
		if c.id == id {
			return runCheck(ctx, f.env, c, map[string]doctorStatus{})
		}
	}
	f.t.Fatalf("no check %q", id)
	return checkResult{}
}

// vms lists the fake's local VMs.
func (f *doctorFixture) vms() []string {
	f.t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.tart.Home, "vms"))
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, de := range entries {
		out = append(out, de.Name())
	}
	return out
}

// noDoctorVM checks that the throwaway VM is gone and its tart run ended.
func (f *doctorFixture) noDoctorVM() {
	f.t.Helper()
	for _, vm := range f.vms() {
		if strings.Contains(vm, "-doctor-") {
			f.t.Errorf("throwaway VM %s left behind (VMs: %v)", vm, f.vms())
		}
	}
	doctorPoll(f.t, "the throwaway VM's tart run to end", 20*time.Second, func() bool { return f.tart.RunningPID(doctorVM) == 0 })
}

// doctorPoll polls cond every 10 ms until it holds, failing after limit. It
// may run outside the test goroutine (it then only reports the failure).
func doctorPoll(t *testing.T, what string, limit time.Duration, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("after %s: still waiting for %s", limit, what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *doctorFixture) setTart(c faketart.Config) { f.tart.SetConfig(c) }

// answering starts an HTTP server standing in for the admin listener.
func fakeAdmin(t *testing.T, f *doctorFixture, status int, body string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	f.env.admin = newAdminClient(strings.TrimPrefix(srv.URL, "http://"))
}

func expectCheck(t *testing.T, r checkResult, status doctorStatus, wants ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %s, want %s: %s (fix: %s)", r.status, status, r.detail, r.fix)
	}
	line := r.detail + " | " + r.fix
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("result lacks %q: %s", w, line)
		}
	}
	if status >= doctorWarn && r.fix == "" {
		t.Errorf("%s without a fix: %s", status, r.detail)
	}
	for _, secret := range []string{doctorSecret, fakegithub.DefaultToken, "not-a-real-password"} {
		if strings.Contains(line, secret) {
			t.Errorf("a secret is printed: %s", line)
		}
	}
}

func TestDoctorTart(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("tart"), doctorPass, f.tart.Bin, faketart.DefaultVersion, "needs "+tartvm.MinVersion.String())
	})
	t.Run("too old", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.setTart(faketart.Config{Version: "2.9.1"})
		expectCheck(t, f.run("tart"), doctorFail, "2.9.1", tartvm.MinVersion.String(), "brew upgrade")
	})
	t.Run("not found", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Path = filepath.Join(f.dir, "no-tart") }})
		expectCheck(t, f.run("tart"), doctorFail, "not found", "brew install cirruslabs/cli/tart")
	})
	t.Run("build from source", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.setTart(faketart.Config{Version: "SNAPSHOT"})
		expectCheck(t, f.run("tart"), doctorWarn, "SNAPSHOT")
	})
}

func TestDoctorNotRoot(t *testing.T) {
	f := newDoctorFixture(t, fixtureOpts{})
	expectCheck(t, f.run("root"), doctorPass, "uid 501")
	f.env.uid = 0
	expectCheck(t, f.run("root"), doctorFail, "running as root", "never with sudo")
}

func TestDoctorHome(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("home"), doctorPass, "HOME "+f.dir, f.tart.Home, "tart.home")
	})
	t.Run("TART_HOME from HOME", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Home = "" }})
		expectCheck(t, f.run("home"), doctorPass, filepath.Join(f.dir, ".tart"), "$HOME/.tart")
	})
	t.Run("neither", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Home = "" }})
		f.env.getenv = func(string) string { return "" }
		expectCheck(t, f.run("home"), doctorFail, "neither HOME nor TART_HOME", "EnvironmentVariables")
	})
	t.Run("no HOME, tart.home set", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.env.getenv = func(string) string { return "" }
		expectCheck(t, f.run("home"), doctorWarn, "HOME is not set", f.tart.Home)
	})
	t.Run("TART_HOME not a directory", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Home = filepath.Join(f.dir, "tarty.yaml") }})
		expectCheck(t, f.run("home"), doctorFail, "is not a directory")
	})
	t.Run("TART_HOME not created yet", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Home = filepath.Join(f.dir, "a", "b") }})
		expectCheck(t, f.run("home"), doctorPass, filepath.Join(f.dir, "a", "b"))
	})
}

func TestDoctorImages(t *testing.T) {
	t.Run("both exist", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("runner-image"), doctorPass, `"runner-image" exists`, "1.0 GB")
		expectCheck(t, f.run("base-image"), doctorPass, `"base-image" exists`)
	})
	t.Run("runner missing", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Images.Runner = "gone" }})
		expectCheck(t, f.run("runner-image"), doctorFail, `"gone" is not a local tart image`, "tart clone base-image gone")
	})
	t.Run("tart list fails", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.setTart(faketart.Config{Faults: []faketart.Fault{{Verb: "list", Fail: "boom"}}})
		expectCheck(t, f.run("runner-image"), doctorFail, "boom")
	})
	t.Run("base missing", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Images.Base = "gone" }})
		expectCheck(t, f.run("base-image"), doctorFail, `"gone" is not a local tart image`, "nightly rebuild")
	})
	t.Run("base missing, rebuild off", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Images.Base, f.cfg.Rebuild.Enabled = "gone", false }})
		expectCheck(t, f.run("base-image"), doctorWarn, "rebuild.enabled is false")
	})
	const oci = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
	t.Run("OCI base pulled", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Images.Base = oci }})
		f.tart.SeedOCI(oci, faketart.VMOptions{DiskGB: 1})
		expectCheck(t, f.run("base-image"), doctorPass, "is pulled")
	})
	t.Run("OCI base not pulled", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Images.Base = oci }})
		expectCheck(t, f.run("base-image"), doctorWarn, "not pulled yet", "tart pull "+oci)
	})
}

func TestDoctorDHCPLease(t *testing.T) {
	f := newDoctorFixture(t, fixtureOpts{})
	expectCheck(t, f.run("dhcp"), doctorPass, "600 s")
	f.dflts = "{\n    DHCPLeaseTimeSecs = 86400;\n}\n"
	expectCheck(t, f.run("dhcp"), doctorWarn, "86400 s", "DHCPLeaseTimeSecs -int 600")
	f.dflts = "The domain/default pair of (" + tartvm.InternetSharingPlist + ", bootpd) does not exist"
	expectCheck(t, f.run("dhcp"), doctorWarn, "no DHCPLeaseTimeSecs", tartvm.DHCPLeaseFix)
	f.env.goos = "linux"
	expectCheck(t, f.run("dhcp"), doctorSkip, "macOS only")
}

func TestDoctorDisk(t *testing.T) {
	f := newDoctorFixture(t, fixtureOpts{})
	free, err := f.env.tart.FreeDisk()
	if err != nil {
		t.Fatal(err)
	}
	if free < 12e9 {
		t.Skipf("only %s free here", gigabytes(free))
	}
	expectCheck(t, f.run("disk"), doctorPass, "free", "1.0 GB")

	// The runner image's apparent size decides (its disk.img is sparse).
	f.tart.Seed("runner-image", faketart.VMOptions{DiskGB: int(free/1e9) + 2})
	expectCheck(t, f.run("disk"), doctorFail, "nightly rebuild refuses", "tart prune")
	// Room for one clone and its margin (1.25 × size), not for two (2.25 × size).
	f.tart.Seed("runner-image", faketart.VMOptions{DiskGB: int(float64(free) / 1.7 / 1e9)})
	expectCheck(t, f.run("disk"), doctorWarn, "a runner and the rebuild beside it")
}

func TestDoctorSoftnet(t *testing.T) {
	f := newDoctorFixture(t, fixtureOpts{})
	expectCheck(t, f.run("softnet"), doctorSkip, "runners.softnet is off")
	f.cfg.Runners.Softnet = true
	expectCheck(t, f.run("softnet"), doctorFail, "not installed", "brew install cirruslabs/cli/softnet")

	softnet := filepath.Join(f.dir, "bin", "softnet")
	if err := os.MkdirAll(filepath.Dir(softnet), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(softnet, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	look := f.env.lookPath
	f.env.lookPath = func(file string) (string, error) {
		if file == "softnet" {
			return softnet, nil
		}
		return look(file)
	}
	expectCheck(t, f.run("softnet"), doctorWarn, "not setuid root", "chmod u+s "+softnet)
	if err := os.Chmod(softnet, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, f.run("softnet"), doctorPass, softnet)
	f.env.goos = "linux"
	expectCheck(t, f.run("softnet"), doctorSkip, "macOS only")
}

func TestDoctorGitHub(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("github"), doctorPass, "organization acme", "credentials work", "(token)")
	})
	t.Run("GitHub Enterprise Server", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{gh: fakegithub.Config{EnterpriseVersion: "3.12.1"},
			ghURL: (*fakegithub.Server).EnterpriseURL})
		expectCheck(t, f.run("github"), doctorPass, "GitHub Enterprise Server 3.12.1")
	})
	t.Run("bad token", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.GitHub.Token = "ghp_wrong_token_value" }})
		r := f.run("github")
		expectCheck(t, r, doctorFail, "credentials were rejected")
		if strings.Contains(r.detail+r.fix, "ghp_wrong_token_value") {
			t.Error("the token is printed")
		}
	})
	t.Run("no permission for runners", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.Inject(fakegithub.Fault{Path: "/orgs/acme/actions/runners", Kind: fakegithub.Forbidden, Times: -1})
		expectCheck(t, f.run("github"), doctorFail, "Self-hosted runners: read and write")
	})
	t.Run("client cannot be built", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.env.ghErr = errors.New("github client: App private key: bad PEM")
		expectCheck(t, f.run("github"), doctorFail, "bad PEM", "github.app.private_key_file")
	})
}

func TestDoctorJIT(t *testing.T) {
	t.Run("registered and removed", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("jit"), doctorPass, doctorVM, "removed it", "self-hosted")
		jits := f.gh.JITRequests()
		if len(jits) != 1 || jits[0].Name != doctorVM {
			t.Fatalf("JIT requests %+v", jits)
		}
		if rs := f.gh.Runners(); len(rs) != 0 {
			t.Errorf("runners left: %+v", rs)
		}
	})
	t.Run("GHES too old", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{gh: fakegithub.Config{EnterpriseVersion: "3.9.2"},
			ghURL: (*fakegithub.Server).EnterpriseURL})
		expectCheck(t, f.run("jit"), doctorFail, "too old for just-in-time runners", "3.9.2", "3.10 or later")
	})
	t.Run("Actions disabled", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.SetActionsEnabled("", false)
		expectCheck(t, f.run("jit"), doctorFail, "cannot register a runner", "enable GitHub Actions")
	})
	t.Run("removal fails", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.gh.Inject(fakegithub.Fault{Method: "DELETE", Path: "/orgs/acme/actions/runners/*", Kind: fakegithub.ServerError, Times: -1})
		expectCheck(t, f.run("jit"), doctorWarn, "could not remove it", "Settings > Actions > Runners")
	})
	t.Run("removed although interrupted", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Interrupted as soon as GitHub registered the runner, before or
		// after its answer arrived: the runner is removed either way.
		go func() {
			doctorPoll(t, "the JIT registration", 20*time.Second, func() bool { return len(f.gh.JITRequests()) > 0 })
			cancel()
		}()
		f.runCtx(ctx, "jit")
		doctorPoll(t, "the interruption", 20*time.Second, func() bool { return ctx.Err() != nil })
		if rs := f.gh.Runners(); len(rs) != 0 {
			t.Errorf("runners left: %+v", rs)
		}
	})
}

func TestDoctorRunnerGroup(t *testing.T) {
	t.Run("default group", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("group"), doctorPass, `group "Default" (id 1) serves all repositories`, "public repositories not allowed")
	})
	t.Run("selected repositories", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{extra: "", mutate: func(f *doctorFixture) { f.cfg.GitHub.RunnerGroup = "macs" }})
		f.gh.AddRepo("web")
		f.gh.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "macs", Visibility: "selected", AllowsPublicRepositories: true,
			Repositories: []string{"web", "app"}})
		expectCheck(t, f.run("group"), doctorPass, "2 selected repositories: acme/app, acme/web", "public repositories allowed")
	})
	t.Run("selected, none", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.GitHub.RunnerGroup = "macs" }})
		f.gh.AddRunnerGroupWith(fakegithub.RunnerGroup{Name: "macs", Visibility: "selected"})
		expectCheck(t, f.run("group"), doctorWarn, "has none", "Runner groups")
	})
	t.Run("missing", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.GitHub.RunnerGroup = "macs" }})
		expectCheck(t, f.run("group"), doctorFail, "no such runner group (it has: Default)", "github.runner_group")
	})
	t.Run("repository runners", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{extra: "", mutate: func(f *doctorFixture) { f.cfg.GitHub.Repository = "app" }})
		expectCheck(t, f.run("group"), doctorSkip, "repository acme/app")
	})
}

func TestDoctorWebhookSecret(t *testing.T) {
	f := newDoctorFixture(t, fixtureOpts{})
	expectCheck(t, f.run("webhook-secret"), doctorPass, "not shown")
	f.cfg.GitHub.WebhookSecret = "short"
	expectCheck(t, f.run("webhook-secret"), doctorWarn, "shorter than 16", "openssl rand -hex 32")
	f.cfg.GitHub.WebhookSecret = ""
	expectCheck(t, f.run("webhook-secret"), doctorFail, "not set", "TARTY_WEBHOOK_SECRET")
}

func TestDoctorAdmin(t *testing.T) {
	t.Run("no daemon", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("admin"), doctorInfo, "no daemon answers on "+f.cfg.Server.AdminListen)
	})
	t.Run("daemon", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		fakeAdmin(t, f, http.StatusOK, `{"status":"ok"}`)
		expectCheck(t, f.run("admin"), doctorInfo, "a Tarty daemon answers")
	})
	t.Run("something else", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		fakeAdmin(t, f, http.StatusNotFound, `{"message":"Not Found"}`)
		expectCheck(t, f.run("admin"), doctorWarn, "not Tarty", "server.admin_listen")
	})
}

func TestDoctorSSH(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		expectCheck(t, f.run("ssh"), doctorPass, "booted "+doctorVM, fmt.Sprintf("ssh %s@127.0.0.1:%d works", f.sshd.User, f.sshd.Port),
			f.workDir+"/run.sh is there", "the VM is deleted")
		f.noDoctorVM()
		if clones := f.tart.Args("clone"); len(clones) != 1 || clones[0][1] != "runner-image" || clones[0][2] != doctorVM {
			t.Errorf("clones %q", clones)
		}
		if _, err := os.Stat(f.env.tart.LogPath(doctorVM)); !os.IsNotExist(err) {
			t.Errorf("tart run log kept after a pass: %v", err)
		}
	})
	t.Run("no run.sh", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true, noRun: true})
		expectCheck(t, f.run("ssh"), doctorFail, "works, but there is no executable "+f.workDir+"/run.sh", "runners.work_dir")
		f.noDoctorVM()
	})
	t.Run("VM does not start", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		f.setTart(faketart.Config{Faults: []faketart.Fault{{Verb: "run", Fail: faketart.VZStartFailed}}})
		expectCheck(t, f.run("ssh"), doctorFail, "booting "+doctorVM, "automatic login")
		f.noDoctorVM()
	})
	t.Run("no IP address", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true, mutate: func(f *doctorFixture) { f.cfg.Runners.BootTimeout = 3 * time.Second }})
		f.setTart(faketart.Config{Faults: []faketart.Fault{{Verb: "ip", NoIP: true}}})
		expectCheck(t, f.run("ssh"), doctorFail, "no IP address for "+doctorVM, "DHCPLeaseTimeSecs", "tart run log")
		f.noDoctorVM()
	})
	t.Run("host key changed", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		// The image's trusted key is another one: the image was re-pulled by hand.
		other := sshdtest.NewKey(t, t.TempDir(), "old_host_key")
		line := "runner-image " + strings.Join(strings.Fields(other.Public)[:2], " ") + "\n"
		if err := os.MkdirAll(f.cfg.StateDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.cfg.StateDir, "known_hosts"), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		expectCheck(t, f.run("ssh"), doctorFail, "host key", "tarty forget-host-key runner-image")
		f.noDoctorVM()
	})
	t.Run("interrupted", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		f.setTart(faketart.Config{Faults: []faketart.Fault{{Verb: "ip", NoIP: true}}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			doctorPoll(t, "the throwaway VM running", 20*time.Second, func() bool { return f.tart.RunningPID(doctorVM) != 0 })
			cancel() // Ctrl-C while the VM boots
		}()
		expectCheck(t, f.runCtx(ctx, "ssh"), doctorFail, "no IP address")
		f.noDoctorVM()
	})
	t.Run("no free slot", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		f.tart.Seed("other-mac", faketart.VMOptions{})
		f.tart.Seed(doctorPrefix+"-1a2b3c4d", faketart.VMOptions{})
		for _, vm := range []string{"other-mac", doctorPrefix + "-1a2b3c4d"} {
			if _, err := f.env.backend.Boot(context.Background(), vm); err != nil {
				t.Fatal(err)
			}
			f.tart.WaitRunning(vm, true, 20*time.Second)
		}
		expectCheck(t, f.run("ssh"), doctorWarn, "no free VM slot", "other macOS VMs other-mac", "Tarty's "+doctorPrefix+"-1a2b3c4d")
		if clones := f.tart.Args("clone"); len(clones) != 0 {
			t.Errorf("cloned %q", clones)
		}
	})
	t.Run("a daemon runs", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		fakeAdmin(t, f, http.StatusOK, `{"status":"ok"}`)
		expectCheck(t, f.run("ssh"), doctorWarn, "not run: a daemon answers", "launchctl bootout")
		if clones := f.tart.Args("clone"); len(clones) != 0 {
			t.Errorf("cloned %q", clones)
		}
	})
	t.Run("SSH client cannot be built", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		f.env.guestErr = errors.New("sshexec: key file: no such file")
		expectCheck(t, f.run("ssh"), doctorFail, "cannot build the SSH client", "ssh.key_file")
	})
}

// TestDoctorRun runs every check: a healthy host passes (exit 0); a broken
// tart fails with what depends on it skipped (exit 1).
func TestDoctorRun(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{ssh: true})
		var out bytes.Buffer
		code := doctor(context.Background(), &out, "tarty.yaml", f.env)
		if code != exitOK {
			t.Errorf("exit %d\n%s", code, out.String())
		}
		for _, c := range doctorChecks() {
			if !strings.Contains(out.String(), c.title) {
				t.Errorf("no line for %s:\n%s", c.title, out.String())
			}
		}
		for _, w := range []string{"PASS  tart", "PASS  SSH into a clone", "INFO  admin listener", "SKIP  softnet", "0 failed"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out.String())
			}
		}
		for _, secret := range []string{doctorSecret, f.gh.Token()} {
			if strings.Contains(out.String(), secret) {
				t.Error("a secret is printed")
			}
		}
		f.noDoctorVM()
	})
	t.Run("no tart", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{mutate: func(f *doctorFixture) { f.cfg.Tart.Path = filepath.Join(f.dir, "no-tart") }})
		var out bytes.Buffer
		code := doctor(context.Background(), &out, "tarty.yaml", f.env)
		if code != exitFailure {
			t.Errorf("exit %d, want 1\n%s", code, out.String())
		}
		for _, w := range []string{"FAIL  tart", "fix: install tart", "SKIP  runner image", "needs tart",
			"SKIP  free disk", "needs runner image", "SKIP  SSH into a clone", "PASS  GitHub runners"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out.String())
			}
		}
	})
}

// TestDoctorCommand runs `tarty doctor` as the CLI does: config problems
// exit 2; a config pointing at the fakes prints every check.
func TestDoctorCommand(t *testing.T) {
	setSecrets(t)
	t.Setenv("TARTY_CONFIG", "")
	code, stdout, stderr := runCLI(t, "doctor", "--config", "../../config/testdata/issue-example.yaml")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "github.orgnization") {
		t.Errorf("invalid config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	f := newDoctorFixture(t, fixtureOpts{ssh: true})
	t.Setenv("TARTY_GITHUB_TOKEN", f.gh.Token())
	t.Setenv("TARTY_WEBHOOK_SECRET", doctorSecret)
	code, stdout, stderr = runCLI(t, "doctor", "--config", filepath.Join(f.dir, "tarty.yaml"))
	// This host's own traits decide a few lines (root, macOS only).
	want := exitOK
	if os.Geteuid() == 0 {
		want = exitFailure
	}
	if code != want {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, want, stdout, stderr)
	}
	for _, w := range []string{"PASS  tart", "PASS  GitHub access", "PASS  SSH into a clone"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
	f.noDoctorVM()
}

//go:build unix

package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi/fakegithub"
	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
	"github.com/tartyci/tarty/tartvm/faketart"
)

// The simulated world's names and timings.
const (
	prefix      = "tarty-demo"
	runnerImage = "macos-runner"
	baseImage   = "macos-base"
	repo        = "app"
	guestUser   = "admin"
	bootDelay   = 800 * time.Millisecond // from `tart run` to an IP address
	jobSeconds  = "2"                    // how long each fake job runs
	labelV1     = "runner image v1"
)

var jobLabels = []string{"self-hosted", "macOS", "tarty"}

// world is the simulator: a temporary directory holding the fake tart's
// TART_HOME, the guest's home, Tarty's state directory and the wrappers, a
// fake GitHub and the SSH guest, and the config that points Tarty at them.
type world struct {
	dir      string
	exe      string // the tarty binary, re-executed as fake tart and fake runner
	tartHome string
	guestDir string // the guest's HOME
	workDir  string // runners.work_dir: run.sh lives here
	logPath  string // the daemon's JSON log, when not shown
	gh       *fakegithub.Server
	guest    *Guest
	cfg      *config.Config
	admin    string // admin listener host:port
	hook     string // webhook URL
	warnings []string

	closeOnce sync.Once
}

// newWorld builds the simulator in a new temporary directory. onCommand
// hears of the guest's commands. The caller closes it.
func newWorld(exe string, onCommand func(string, int)) (w *world, err error) {
	removeStale()
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, err
	}
	// Resolve symbolic links (macOS's /var is /private/var), so that
	// paths in guest commands and in tart's files agree.
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	w = &world{dir: dir, exe: exe}
	defer func() {
		if err != nil {
			w.close()
			w = nil
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return w, err
	}
	w.tartHome = filepath.Join(dir, "tart")
	w.guestDir = filepath.Join(dir, "guest")
	w.workDir = filepath.Join(w.guestDir, "actions-runner")
	w.logPath = filepath.Join(dir, "tarty.log")
	for _, d := range []string{w.tartHome, w.workDir, filepath.Join(dir, "bin"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return w, err
		}
	}

	// The fake tart: the tarty binary under EnvFakeTart, images with
	// labels, and a short boot.
	tartPath := filepath.Join(dir, "bin", "tart")
	if err := writeScript(tartPath, raceQuick+EnvFakeTart+"=1 exec "+shQuote(exe)+` "$@"`); err != nil {
		return w, err
	}
	boot := int(bootDelay / time.Millisecond)
	if err := faketart.WriteConfig(w.tartHome, faketart.Config{BootDelayMS: &boot}); err != nil {
		return w, err
	}
	for _, img := range []struct{ name, label string }{
		{runnerImage, labelV1},
		{baseImage, "macOS base image"},
	} {
		// 1 GB disks: the rebuild checks that a clone fits on the disk.
		if err := faketart.SeedVM(w.tartHome, img.name, faketart.VMOptions{DiskGB: 1}); err != nil {
			return w, err
		}
		if err := faketart.SetLabel(w.tartHome, img.name, img.label); err != nil {
			return w, err
		}
	}

	// The guest's runner: run.sh is the tarty binary under EnvFakeRunner.
	runSh := fmt.Sprintf("%s%s=1 FAKERUNNER_JOB_SECONDS=%s FAKERUNNER_IDLE_SECONDS=60 exec %s \"$@\"",
		raceQuick, EnvFakeRunner, jobSeconds, shQuote(exe))
	if err := writeScript(filepath.Join(w.workDir, "run.sh"), runSh); err != nil {
		return w, err
	}
	// config.sh answers only --version, which Tarty reads in each new image.
	if err := writeScript(filepath.Join(w.workDir, "config.sh"), "echo "+shQuote(fakerunner.Version)); err != nil {
		return w, err
	}

	// Keys: Tarty's login key and the guest's host key.
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return w, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "tarty demo")
	if err != nil {
		return w, err
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return w, err
	}
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return w, err
	}
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return w, err
	}
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return w, err
	}
	w.guest, err = StartGuest(GuestOptions{User: guestUser, ClientKey: sshPub, HostKey: hostKey, Home: w.guestDir,
		Env: guestEnv(filepath.Join(dir, "tmp")), OnCommand: onCommand})
	if err != nil {
		return w, err
	}

	// The fake GitHub, delivering signed webhooks to Tarty's listener.
	hookPort, err := pickPort()
	if err != nil {
		return w, err
	}
	adminPort, err := pickPort()
	if err != nil {
		return w, err
	}
	w.admin = fmt.Sprintf("127.0.0.1:%d", adminPort)
	secret := randomHex(24)
	w.hook = fmt.Sprintf("http://127.0.0.1:%d/github/webhook", hookPort)
	w.gh = fakegithub.New(fakegithub.Config{Token: "ghp_demo" + randomHex(16), WebhookURL: w.hook, WebhookSecret: secret})
	w.gh.AddRepo(repo)

	// Tarty's config, through the real loader.
	vms := faketart.VMsDir(w.tartHome)
	// The runner's shutdown command powers its fake VM off. The rebuild
	// runs the same command in the build VM without TARTY_RUNNER_NAME; only
	// one build VM exists at a time.
	shutdown := fmt.Sprintf(`if [ -n "$TARTY_RUNNER_NAME" ]; then touch %s/"$TARTY_RUNNER_NAME"/%s; `+
		`else for vm in %s/%s-build-*; do touch "$vm"/%s; done; fi`,
		shQuote(vms), faketart.PowerOffFile, shQuote(vms), prefix, faketart.PowerOffFile)
	// rebuild.command runs in the guest of the build VM. Every guest is
	// this host, so where a real command installs tools on the build VM's
	// disk, this one writes the new image's label into the build VM's files.
	rebuild := fmt.Sprintf(`echo "installing Xcode and the Actions runner (simulated)"; sleep 1; `+
		`for vm in %s/%s-build-*; do echo "runner image v2, rebuilt at $(date +%%H:%%M:%%S)" > "$vm"/%s; done; echo done`,
		shQuote(vms), prefix, faketart.LabelFile)
	yaml := fmt.Sprintf(`github:
  url: %s
  token: %s
  organization: %s
  labels: [tarty]
  webhook_secret: %s
images:
  base: %s
  runner: %s
ssh:
  user: %s
  port: %d
  key_file: %s
  connect_timeout: 20s
runners:
  max: 2
  name_prefix: %s
  boot_timeout: 30s
  idle_timeout: 30s
  max_lifetime: 5m
  work_dir: %s
  shutdown_command: %s
rebuild:
  command: %s
  hour: %d
  timeout: 1m
reconcile:
  interval: 10s
server:
  listen: 127.0.0.1:%d
  admin_listen: %s
tart:
  path: %s
  home: %s
log:
  level: info
  format: json
state_dir: %s
`, q(w.gh.URL()), q(w.gh.Token()), q(w.gh.Organization()), q(secret), q(baseImage), q(runnerImage),
		q(guestUser), w.guest.Port(), q(keyFile), q(prefix), q(w.workDir), q(shutdown), q(rebuild),
		// The nightly rebuild's hour is twelve hours away: only the
		// demo's request starts one.
		(time.Now().Hour()+12)%24,
		hookPort, q(w.admin), q(tartPath), q(w.tartHome), q(filepath.Join(dir, "state")))
	cfgPath := filepath.Join(dir, "tarty.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return w, err
	}
	w.cfg, w.warnings, err = config.Parse([]byte(yaml), cfgPath, config.Env{HomeDir: w.guestDir, Hostname: "demo"})
	if err != nil {
		return w, fmt.Errorf("the demo's config: %w", err)
	}
	return w, nil
}

const (
	dirPattern = "tarty-demo-"
	pidFile    = "demo.pid"
)

// removeStale removes the directories of demos that were killed before they
// could clean up (SIGKILL, a second Ctrl-C): their fake VMs exit once their
// TART_HOME is gone. A directory is stale when the process named in its
// pid file no longer exists.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, pidFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// close stops the fakes and removes the directory. The daemon must have
// stopped.
func (w *world) close() {
	w.closeOnce.Do(w.doClose)
}

func (w *world) doClose() {
	if w.gh != nil {
		w.gh.Close()
	}
	if w.guest != nil {
		w.guest.Close()
	}
	if w.tartHome != "" {
		_ = faketart.KillAll(w.tartHome, 10*time.Second)
	}
	_ = os.RemoveAll(w.dir)
}

// runningVMs lists the fake tart's VMs that run now.
func (w *world) runningVMs() []string {
	entries, _ := os.ReadDir(faketart.VMsDir(w.tartHome))
	var out []string
	for _, e := range entries {
		if pid, err := faketart.RunningPID(w.tartHome, e.Name()); err == nil && pid != 0 {
			out = append(out, e.Name())
		}
	}
	return out
}

// prefixedVMs lists the fake tart's VMs with Tarty's prefix, running or not.
func (w *world) prefixedVMs() []string {
	entries, _ := os.ReadDir(faketart.VMsDir(w.tartHome))
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// runEnd says how VM name's last `tart run` ended, from what tart printed
// in the run's log (Tarty keeps it under state_dir/tart-logs).
func (w *world) runEnd(name string) string {
	b, _ := os.ReadFile(filepath.Join(w.cfg.StateDir, "tart-logs", name+".log"))
	out := string(b)
	i := max(strings.LastIndex(out, "Stopping VM..."), strings.LastIndex(out, "guest has stopped the virtual machine"))
	switch {
	case i < 0:
		return "tart run ended"
	case strings.HasPrefix(out[i:], "Stopping"):
		return "stopped from the host (tart stop)"
	case strings.Contains(out[i:], "due to error"):
		return "the guest stopped with an error"
	}
	return guestPoweredOff
}

const guestPoweredOff = "the guest powered itself off"

func (w *world) label(vm string) string {
	l, err := faketart.Label(w.tartHome, vm)
	if err != nil {
		return "?"
	}
	return l
}

// raceQuick starts a wrapper's command line: a binary built with -race (the
// test binary, `go run -race`) otherwise sleeps a second at every exit, and
// the fake tart exits many times a minute.
const raceQuick = `GORACE="${GORACE:-} atexit_sleep_ms=0" `

func writeScript(path, body string) error {
	return os.WriteFile(path, []byte("#!/bin/sh\n# Written by `tarty demo`.\n"+body+"\n"), 0o700)
}

// q quotes s for YAML (a JSON string is a YAML double-quoted scalar).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// shQuote quotes s as one word for POSIX sh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pickPort chooses the daemon's ports (tests replace it).
var pickPort = freePort

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

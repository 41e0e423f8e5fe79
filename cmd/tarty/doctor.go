package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tartyci/tarty"
	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/ghapi"
	"github.com/tartyci/tarty/orchard"
	"github.com/tartyci/tarty/sshexec"
	"github.com/tartyci/tarty/tartvm"
)

// `tarty doctor` checks the host, the images, GitHub and a throwaway VM, and
// prints one line per check: PASS, INFO, SKIP, WARN or FAIL, with a one-line
// fix for WARN and FAIL. It exits 1 when a check fails. The checks are plain
// functions over a doctorEnv, which tests fill with fakes (another OS, root,
// no HOME, a `defaults` that answers what they want).

// doctorStatus is a check's verdict, ordered from best to worst.
type doctorStatus int

const (
	doctorPass doctorStatus = iota
	doctorInfo
	doctorSkip
	doctorWarn
	doctorFail
)

func (s doctorStatus) String() string {
	return [...]string{"PASS", "INFO", "SKIP", "WARN", "FAIL"}[s]
}

// checkResult is what a check found (detail, one line) and, for WARN and
// FAIL, what to do about it (fix, one line).
type checkResult struct {
	status doctorStatus
	detail string
	fix    string
}

func checkPass(format string, args ...any) checkResult {
	return checkResult{status: doctorPass, detail: fmt.Sprintf(format, args...)}
}

func checkInfo(format string, args ...any) checkResult {
	return checkResult{status: doctorInfo, detail: fmt.Sprintf(format, args...)}
}

func checkSkip(format string, args ...any) checkResult {
	return checkResult{status: doctorSkip, detail: fmt.Sprintf(format, args...)}
}

func checkWarn(fix, format string, args ...any) checkResult {
	return checkResult{status: doctorWarn, detail: fmt.Sprintf(format, args...), fix: fix}
}

func checkFail(fix, format string, args ...any) checkResult {
	return checkResult{status: doctorFail, detail: fmt.Sprintf(format, args...), fix: fix}
}

// checkFailErr is a FAIL for err, with the fix the error carries (tarty.HostFix)
// or else fallback.
func checkFailErr(err error, fallback, format string, args ...any) checkResult {
	fix := fallback
	if f, ok := tarty.HostFix(err); ok {
		fix = f
	}
	return checkFail(fix, "%s: %s", fmt.Sprintf(format, args...), oneLineErr(err))
}

// oneLineErr is err on one line (joined errors are separated by "; ").
func oneLineErr(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// doctorCheck is one check. Checks run in order; a check whose needs failed
// or were skipped is skipped, so one broken tart does not fail five lines.
type doctorCheck struct {
	id      string
	title   string
	macOS   bool          // only meaningful on macOS: "SKIP (macOS only)" elsewhere
	local   bool          // about tart on this Mac: skipped with backend: orchard
	fleet   bool          // about the Orchard controller: only with backend: orchard
	needs   []string      // ids of earlier checks that must have passed (or warned)
	timeout time.Duration // 0: defaultCheckTimeout; negative: computed by the check
	run     func(ctx context.Context, e *doctorEnv) checkResult
}

const defaultCheckTimeout = 2 * time.Minute

// doctorEnv is everything the checks look at. newDoctorEnv fills it from the
// config and the process; tests replace fields.
type doctorEnv struct {
	cfg      *config.Config
	goos     string                               // runtime.GOOS
	uid      int                                  // effective user ID
	getenv   func(string) string                  // the process environment
	lookPath func(file string) (string, error)    // exec.LookPath
	command  tartvm.CommandFunc                   // runs `defaults`
	newName  func() string                        // throwaway VM and runner names
	admin    *adminClient                         // the daemon's admin listener
	prepare  func(dir string) (statePaths, error) // creates state_dir (the SSH check needs it)

	tart     *tartvm.Client
	backend  *tartvm.Backend
	images   *tartvm.Images
	gh       *ghapi.Client
	ghErr    error // building the GitHub client failed (App key)
	guest    *sshexec.Client
	guestErr error // building the SSH client failed (key file, credentials)
	fleet    *orchard.Backend
	fleetErr error // building the Orchard client failed (certificate, token)

	cleanupTimeout time.Duration // for deleting the throwaway VM and runner

	daemonOnce sync.Once
	daemonUp   bool
	daemonErr  error
}

// newDoctorEnv builds the adapters as `tarty run` would, each on its own so
// that one that cannot be built fails only its checks. It creates nothing on
// disk.
func newDoctorEnv(cfg *config.Config, version string) *doctorEnv {
	e := &doctorEnv{
		cfg: cfg, goos: runtime.GOOS, uid: os.Geteuid(), getenv: os.Getenv, lookPath: exec.LookPath,
		command: doctorCommand, newName: func() string { return doctorName(cfg.Runners.NamePrefix) },
		admin: newAdminClient(cfg.Server.AdminListen), prepare: prepareState,
		cleanupTimeout: 3 * time.Minute,
	}
	log := zerolog.Nop() // the checks say what matters
	paths := statePathsIn(cfg.StateDir)
	e.tart, e.backend = newTart(cfg, paths.tartLogs, log)
	e.images = tartvm.NewImages(e.tart)
	e.gh, e.ghErr = newGitHub(cfg, log, version, nil)
	if cfg.Backend == config.BackendOrchard {
		e.fleet, e.fleetErr = newOrchardBackend(cfg, log, version)
	}
	e.guest, e.guestErr = newGuest(cfg, paths.knownHosts, nil, log)
	return e
}

func doctorCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// doctorName is a throwaway VM and runner name, "<prefix>-doctor-<8 hex>":
// with Tarty's prefix, so that one left behind (a killed doctor) is deleted
// by the next `tarty run`.
func doctorName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-doctor-" + hex.EncodeToString(b)
}

// daemon reports, once, whether a Tarty daemon answers on the admin listener.
// err is errNoDaemon (wrapped) when nothing answers, another error when
// something that is not Tarty does.
func (e *doctorEnv) daemon(ctx context.Context) (bool, error) {
	e.daemonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var health struct {
			Status string `json:"status"`
		}
		err := e.admin.do(ctx, "GET", "/healthz", &health)
		switch {
		case err != nil:
			e.daemonErr = err
		case health.Status != "ok":
			e.daemonErr = fmt.Errorf("GET /healthz answered %q, not Tarty's {\"status\":\"ok\"}", health.Status)
		default:
			e.daemonUp = true
		}
	})
	return e.daemonUp, e.daemonErr
}

// doctorResult is one printed line.
type doctorResult struct {
	check doctorCheck
	checkResult
}

// runDoctor runs checks in order and reports what each found.
func runDoctor(ctx context.Context, e *doctorEnv, checks []doctorCheck, report func(doctorResult)) []doctorResult {
	var out []doctorResult
	done := map[string]doctorStatus{}
	for _, c := range checks {
		r := runCheck(ctx, e, c, done)
		done[c.id] = r.status
		dr := doctorResult{check: c, checkResult: r}
		out = append(out, dr)
		if report != nil {
			report(dr)
		}
	}
	return out
}

func runCheck(ctx context.Context, e *doctorEnv, c doctorCheck, done map[string]doctorStatus) checkResult {
	if c.macOS && e.goos != "darwin" {
		return checkSkip("macOS only")
	}
	if c.local && e.cfg.Backend == config.BackendOrchard {
		return checkSkip("backend: orchard runs VMs on the Orchard workers, not here")
	}
	if c.fleet && e.cfg.Backend != config.BackendOrchard {
		return checkSkip("backend: local")
	}
	for _, n := range c.needs {
		if st, ok := done[n]; ok && (st == doctorFail || st == doctorSkip) {
			return checkSkip("needs %s", doctorTitle(n))
		}
	}
	if err := ctx.Err(); err != nil {
		return checkSkip("interrupted")
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = defaultCheckTimeout
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	return c.run(cctx, e)
}

func doctorTitle(id string) string {
	for _, c := range doctorChecks() {
		if c.id == id {
			return c.title
		}
	}
	return id
}

// printDoctorResult writes one result: status, title, detail, and the fix
// on the next line.
func printDoctorResult(w io.Writer, r doctorResult) {
	fmt.Fprintf(w, "%-4s  %-22s %s\n", r.status, r.check.title, r.detail)
	if r.fix != "" && r.status >= doctorWarn {
		fmt.Fprintf(w, "      %-22s fix: %s\n", "", r.fix)
	}
}

func cmdDoctor(ctx context.Context, inv *invocation) int {
	cfg, code := loadConfig(inv)
	if cfg == nil {
		return code
	}
	ver, _ := buildVersion()
	return doctor(ctx, inv.stdout, inv.configPath, newDoctorEnv(cfg, ver))
}

// doctor runs every check against e, prints them and a summary, and returns
// the exit code: 1 when a check failed.
func doctor(ctx context.Context, w io.Writer, configPath string, e *doctorEnv) int {
	fmt.Fprintf(w, "tarty doctor: %s (runners named %s-*)\n\n", configPath, e.cfg.Runners.NamePrefix)
	results := runDoctor(ctx, e, doctorChecks(), func(r doctorResult) { printDoctorResult(w, r) })
	counts := map[doctorStatus]int{}
	for _, r := range results {
		counts[r.status]++
	}
	fmt.Fprintf(w, "\n%d passed, %d warnings, %d failed", counts[doctorPass], counts[doctorWarn], counts[doctorFail])
	if n := counts[doctorSkip]; n > 0 {
		fmt.Fprintf(w, ", %d skipped", n)
	}
	fmt.Fprintln(w)
	if counts[doctorFail] > 0 {
		return exitFailure
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return exitFailure
	}
	return exitOK
}

package faketart

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"
)

// Main runs one fake tart invocation and returns its exit code. args excludes
// the program name; getenv supplies TART_HOME, which must be set: unlike tart,
// the fake never falls back to ~/.tart. Every verb except `run` and a hanging
// fault may run in-process; `run` blocks until the VM stops and uses
// process-wide signals, so it needs its own process (the tart executable in
// cmd/tart, or a binary that calls Main).
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	start := time.Now()
	home := getenv("TART_HOME")
	if home == "" {
		// Unlike tart, never fall back to ~/.tart: a fake `delete` must not
		// reach a developer's real VMs.
		fmt.Fprintln(stderr, "faketart: TART_HOME must be set")
		return 1
	}
	t := &tart{home: home, stdout: stdout, stderr: stderr, args: args, start: start}
	if err := os.MkdirAll(filepath.Join(home, "vms"), 0o755); err != nil {
		fmt.Fprintf(stderr, "TART_HOME is invalid: %s does not exist, yet we can't create it: %v\n", home, err)
		return 1
	}
	code := t.dispatch()
	t.logCall(code, false)
	return code
}

// tart is one invocation.
type tart struct {
	home           string
	stdout, stderr io.Writer
	args           []string
	start          time.Time
	cfg            Config
	interrupted    bool // ended by SIGINT (logged in Call.Interrupted)
}

func (t *tart) dispatch() int {
	if len(t.args) == 0 {
		fmt.Fprint(t.stdout, overview)
		return 0
	}
	cfg, err := readConfig(t.home)
	if err != nil {
		fmt.Fprintf(t.stderr, "faketart: %v\n", err)
		return 1
	}
	t.cfg = cfg

	verb, rest := t.args[0], t.args[1:]
	switch verb {
	case "--version":
		return t.withFault("--version", "", func() int {
			fmt.Fprintln(t.stdout, cfg.version())
			return 0
		})
	case "-h", "--help", "help":
		fmt.Fprint(t.stdout, overview)
		return 0
	}
	cmds := map[string]struct {
		c  *command
		fn func(parsed) int
	}{
		"clone": {cmdClone, t.clone}, "set": {cmdSet, t.set}, "get": {cmdGet, t.get},
		"list": {cmdList, t.list}, "ip": {cmdIP, t.ip}, "stop": {cmdStop, t.stop},
		"delete": {cmdDelete, t.delete}, "rename": {cmdRename, t.rename}, "run": {cmdRun, t.run},
		"pull": {cmdPull, t.pull},
	}
	entry, ok := cmds[verb]
	if !ok {
		switch verb {
		case "create", "login", "logout", "exec", "push", "import", "export", "prune", "suspend", "fqn":
			fmt.Fprintf(t.stderr, "faketart: %q is not simulated\n", verb)
			return 1
		}
		return t.usage(nil, usagef("Unexpected argument '%s'", verb))
	}
	for _, a := range rest {
		if a == "-h" || a == "--help" {
			fmt.Fprintf(t.stdout, "USAGE: tart %s\n", entry.c.usage)
			return 0
		}
	}
	p, uerr := entry.c.parse(rest)
	if uerr != nil {
		return t.usage(entry.c, uerr)
	}
	if verb == "run" || verb == "pull" { // they apply their faults themselves, mid-way
		return entry.fn(p)
	}
	name := ""
	if len(p.args) > 0 {
		name = p.args[0]
		if verb == "clone" {
			name = p.args[1]
		}
	}
	return t.withFault(verb, name, func() int { return entry.fn(p) })
}

// withFault applies a Hang or Fail fault for verb, or runs fn.
func (t *tart) withFault(verb, name string, fn func() int) int {
	f, err := pickFault(t.home, t.cfg, verb, name)
	if err != nil {
		fmt.Fprintf(t.stderr, "faketart: %v\n", err)
		return 1
	}
	switch {
	case f.Hang:
		return t.hang(f)
	case f.Fail != "":
		return t.fail(f)
	}
	return fn()
}

func (t *tart) fail(f Fault) int {
	fmt.Fprintln(t.stderr, f.Fail)
	if f.ExitCode != 0 {
		return f.ExitCode
	}
	return 1
}

// hang logs the call and sleeps until the process is killed or, unless
// f.IgnoreStop, interrupted: SIGINT cancels a tart command, which then exits 1
// as Swift reports a cancelled task. With f.SpawnChild it first leaves a child
// in its process group that ignores SIGINT, as a helper process might, so only
// a signal to the whole group ends it.
func (t *tart) hang(f Fault) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	if release, err := registerProc(t.home); err == nil {
		defer release()
	}
	if f.SpawnChild {
		if err := spawnChild(t.home); err != nil {
			return t.runtimeErr(1, "faketart: %v", err)
		}
	}
	t.logCall(0, true)
	for range sigs {
		if !f.IgnoreStop {
			fmt.Fprintln(t.stderr, "Error: CancellationError()")
			t.interrupted = true
			return 1
		}
	}
	return 1 // not reached: sigs is never closed
}

// usage prints a ValidationError the way ArgumentParser does and returns 64.
func (t *tart) usage(c *command, err *usageError) int {
	fmt.Fprintf(t.stderr, "Error: %s\n", err.msg)
	if c != nil {
		fmt.Fprintf(t.stderr, "Usage: tart %s\n  See 'tart %s --help' for more information.\n", c.usage, c.name)
	} else {
		fmt.Fprint(t.stderr, "Usage: tart <subcommand>\n  See 'tart --help' for more information.\n")
	}
	return 64
}

// runtimeErr prints one of tart's RuntimeError messages (no prefix) and returns code.
func (t *tart) runtimeErr(code int, format string, a ...any) int {
	fmt.Fprintf(t.stderr, format+"\n", a...)
	return code
}

func (t *tart) doesNotExist(name string) int {
	return t.runtimeErr(2, "the specified VM %q does not exist", name)
}

// open is tart's VMStorageLocal.open: a missing directory is "does not
// exist" (exit 2); a directory without all of config.json, disk.img and
// nvram.bin is "missing some of its files" (exit 1). It returns the exit code
// when ok is false.
func (t *tart) open(name string) (d vmDir, code int, ok bool) {
	d, local := localDir(t.home, name)
	switch {
	case !local || !d.dirExists():
		return d, t.doesNotExist(name), false
	case !d.initialized():
		return d, t.runtimeErr(1, "%s", missingFiles), false
	}
	return d, 0, true
}

// nsError prints an error that tart does not wrap in a RuntimeError (a
// Foundation or Swift error): ArgumentParser prefixes it with "Error: " and
// tart exits 1.
func (t *tart) nsError(format string, a ...any) int {
	fmt.Fprintf(t.stderr, "Error: "+format+"\n", a...)
	return 1
}

// Call is one line of the invocation log, $TART_HOME/faketart-calls.jsonl.
type Call struct {
	Time       time.Time `json:"time"`        // when the invocation started
	Args       []string  `json:"args"`        // without the program name
	Exit       int       `json:"exit"`        // exit code (meaningless when Hung)
	Hung       bool      `json:"hung"`        // a Hang fault: logged when it started hanging
	PID        int       `json:"pid"`         // the fake's process id
	DurationMS int64     `json:"duration_ms"` // until exit (or until it started hanging)
	// Interrupted: a SIGINT ended it (a cancelled hung verb or pull); run
	// logs stops as "Stopping VM..." in its output instead.
	Interrupted bool `json:"interrupted,omitempty"`
}

// logCall appends the invocation to the log with one write, which O_APPEND
// keeps whole among concurrent invocations.
func (t *tart) logCall(code int, hung bool) {
	c := Call{Time: t.start.UTC(), Args: t.args, Exit: code, Hung: hung, PID: os.Getpid(),
		DurationMS: time.Since(t.start).Milliseconds(), Interrupted: t.interrupted}
	if c.Args == nil {
		c.Args = []string{}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(t.home, callsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	f.Write(append(b, '\n'))
	f.Close()
}

const overview = `OVERVIEW: fake tart (Tarty test double)

USAGE: tart <subcommand>

SUBCOMMANDS:
  clone, run, set, get, list, ip, stop, delete, rename, pull
`

package tartvm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Default timeouts per verb, applied on top of the caller's context (the
// earlier deadline wins). Clone and pull may fetch tens of gigabytes on a
// cold cache.
const (
	cloneTimeout  = 2 * time.Hour
	pullTimeout   = 2 * time.Hour
	deleteTimeout = 5 * time.Minute
	editTimeout   = time.Minute      // set, rename
	queryTimeout  = 30 * time.Second // list, get, --version
	slackTimeout  = 30 * time.Second // added to ip's --wait and stop's --timeout
)

// DefaultStartGrace is how long Run watches a fresh `tart run` for an early
// failure (VM limit, missing VM) before handing back the channel.
const DefaultStartGrace = time.Second

// DefaultKillGrace is how long a cancelled tart call has, after SIGINT, to
// clean up and exit before its whole process group is killed.
const DefaultKillGrace = 10 * time.Second

// Output bounds: tart's output is small; the caps only stop a runaway child.
const (
	maxStdout = 8 << 20
	maxStderr = 64 << 10
)

// Options configure a Client.
type Options struct {
	Path string // tart binary; default "tart" (looked up in PATH)
	Home string // TART_HOME for every call; "" inherits the environment's
	// LogDir is where `tart run` output goes, one <name>.log per VM (the
	// daemon passes a directory under its state_dir). Required by Run; it is
	// created with mode 0700 and the logs with 0600.
	LogDir string
	Logger zerolog.Logger // zero value logs nothing

	// StartGrace is how long Run waits for `tart run` to fail early so it can
	// return that error directly. 0 means DefaultStartGrace; negative means Run
	// returns as soon as the process started (every exit then comes on the channel).
	StartGrace time.Duration

	// KillGrace is how long a cancelled call may take to exit after SIGINT
	// before its process group is killed; 0 means DefaultKillGrace.
	KillGrace time.Duration
}

// Client runs tart. It is safe for concurrent use.
type Client struct {
	path       string
	home       string
	logDir     string
	log        zerolog.Logger
	startGrace time.Duration
	killGrace  time.Duration
}

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{path: opts.Path, home: opts.Home, logDir: opts.LogDir, log: opts.Logger,
		startGrace: opts.StartGrace, killGrace: opts.KillGrace}
	if c.path == "" {
		c.path = "tart"
	}
	if c.startGrace == 0 {
		c.startGrace = DefaultStartGrace
	}
	if c.killGrace <= 0 {
		c.killGrace = DefaultKillGrace
	}
	return c
}

// LogPath is the file `tart run` output of VM name is appended to.
func (c *Client) LogPath(name string) string {
	return filepath.Join(c.logDir, name+".log")
}

// env is the child's environment: ours, with TART_HOME replaced when configured.
func (c *Client) env() []string {
	env := os.Environ()
	if c.home == "" {
		return env
	}
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TART_HOME=") {
			out = append(out, kv)
		}
	}
	return append(out, "TART_HOME="+c.home)
}

// call describes one tart invocation. verb and name are what errors and logs
// show; args is the full argument list.
type call struct {
	verb    string
	name    string
	args    []string
	timeout time.Duration
	env     []string  // added to the environment
	stdout  io.Writer // also receives stdout as it arrives (pull's progress)
}

// exec runs one tart command to completion and returns its stdout, or an *Error.
//
// The command gets its own process group. When ctx ends (or the verb's
// timeout passes) the group gets SIGINT, which tart handles by cancelling its
// task and cleaning up (a clone removes its half-made copy; SIGKILL would
// leave it); whatever is still alive KillGrace later, and anything of the
// group left once tart exited, is killed with SIGKILL.
func (c *Client) exec(ctx context.Context, cl call) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()

	cmd := exec.Command(c.path, cl.args...)
	cmd.Env = append(c.env(), cl.env...)
	stdout := &capBuffer{max: maxStdout}
	stderr := &capBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if cl.stdout != nil {
		cmd.Stdout = io.MultiWriter(stdout, cl.stdout)
	}
	cmd.SysProcAttr = groupAttr()
	// Should tart leave a child holding our pipes, stop waiting for it.
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	cancelled := false
	err := cmd.Start()
	if err == nil {
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case err = <-waited:
		case <-ctx.Done():
			cancelled = true
			pgid := cmd.Process.Pid
			interruptGroup(pgid)
			grace := time.NewTimer(c.killGrace)
			select {
			case err = <-waited:
				grace.Stop()
			case <-grace.C:
				c.log.Warn().Str("verb", cl.verb).Str("vm", cl.name).Dur("grace", c.killGrace).
					Msg("tart ignored SIGINT; killing its process group")
				killGroup(pgid)
				err = <-waited
			}
			killGroup(pgid) // children that outlived tart
		}
	}
	ev := c.log.Debug().Str("verb", cl.verb).Dur("took", time.Since(start))
	if cl.name != "" {
		ev = ev.Str("vm", cl.name)
	}
	if err == nil && !cancelled {
		ev.Msg("tart")
		return stdout.Bytes(), nil
	}
	if err == nil { // exited 0 after our SIGINT: it may have stopped half-way
		err = ctx.Err()
	}
	e := c.newError(cl.verb, cl.name, err)
	if cancelled {
		e.ctxErr = ctx.Err()
	}
	e.Stderr = errorLine(stderr.Bytes())
	if e.Stderr == "" {
		e.Stderr = firstLine(stdout.Bytes())
	}
	e.output = stderr.String()
	ev.Int("exit", e.ExitCode).Msg("tart failed")
	return stdout.Bytes(), e
}

func (c *Client) newError(verb, name string, err error) *Error {
	e := &Error{Verb: verb, Name: name, ExitCode: -1, Err: err, path: c.path}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		e.ExitCode = ee.ExitCode()
	}
	return e
}

// capBuffer keeps the first max bytes written and discards the rest, so a
// runaway child cannot exhaust memory.
type capBuffer struct {
	bytes.Buffer
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

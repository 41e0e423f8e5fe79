package tartvm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Default timeouts per verb, applied on top of the caller's context (the
// earlier deadline wins). Clone may pull tens of gigabytes on a cold cache.
const (
	cloneTimeout  = 2 * time.Hour
	deleteTimeout = 5 * time.Minute
	editTimeout   = time.Minute      // set, rename
	queryTimeout  = 30 * time.Second // list, get, --version
	slackTimeout  = 30 * time.Second // added to ip's --wait and stop's --timeout
)

// DefaultStartGrace is how long Run watches a fresh `tart run` for an early
// failure (VM limit, missing VM) before handing back the channel.
const DefaultStartGrace = time.Second

// Output bounds: tart's output is small; the caps only stop a runaway child.
const (
	maxStdout = 8 << 20
	maxStderr = 64 << 10
)

// Options configure a Client.
type Options struct {
	Path   string         // tart binary; default "tart" (looked up in PATH)
	Home   string         // TART_HOME for every call; "" inherits the environment's
	LogDir string         // where `tart run` output goes, one <name>.log per VM; default <tmp>/tarty-tart-logs
	Logger zerolog.Logger // zero value logs nothing

	// StartGrace is how long Run waits for `tart run` to fail early so it can
	// return that error directly. 0 means DefaultStartGrace; negative means Run
	// returns as soon as the process started (every exit then comes on the channel).
	StartGrace time.Duration
}

// Client runs tart. It is safe for concurrent use.
type Client struct {
	path       string
	home       string
	logDir     string
	log        zerolog.Logger
	startGrace time.Duration
}

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{path: opts.Path, home: opts.Home, logDir: opts.LogDir, log: opts.Logger, startGrace: opts.StartGrace}
	if c.path == "" {
		c.path = "tart"
	}
	if c.logDir == "" {
		c.logDir = filepath.Join(os.TempDir(), "tarty-tart-logs")
	}
	if c.startGrace == 0 {
		c.startGrace = DefaultStartGrace
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
}

// exec runs one tart command to completion and returns its stdout, or an *Error.
func (c *Client) exec(ctx context.Context, cl call) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, c.path, cl.args...)
	cmd.Env = c.env()
	stdout := &capBuffer{max: maxStdout}
	stderr := &capBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Should tart leave a child holding our pipes, stop waiting for it.
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err := cmd.Run()
	ev := c.log.Debug().Str("verb", cl.verb).Dur("took", time.Since(start))
	if cl.name != "" {
		ev = ev.Str("vm", cl.name)
	}
	if err == nil {
		ev.Msg("tart")
		return stdout.Bytes(), nil
	}
	e := c.newError(cl.verb, cl.name, err)
	if ctx.Err() != nil {
		e.ctxErr = ctx.Err()
	}
	e.Stderr = firstLine(stderr.Bytes())
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

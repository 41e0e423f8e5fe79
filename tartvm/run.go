package tartvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// maxRunOutput bounds how much of a VM's new log output is read to explain its exit.
const maxRunOutput = 64 << 10

// RunOptions adjust one `tart run`.
type RunOptions struct {
	// Softnet adds --net-softnet: the guest reaches the internet through
	// tart's userspace network filter, but neither its sibling VMs nor the
	// host's LAN (clones of one image share its SSH host key, so a job with
	// sudo could otherwise pose as its sibling on the shared NAT).
	Softnet bool
}

// VMRun is one `tart run` process started by Start. It is safe for
// concurrent use.
type VMRun struct {
	Name string
	PID  int

	proc *os.Process
	done chan struct{}
	err  error // set before done is closed
}

// Done is closed when `tart run` has exited; Err then tells how.
func (r *VMRun) Done() <-chan struct{} { return r.done }

// Err is the run's result once Done is closed: nil for a guest power-off or a
// `tart stop`, else an *Error (a guest crash that tart reports with exit 0
// included: see GuestCrashed). Before that it is nil.
func (r *VMRun) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Alive reports whether `tart run` has not exited yet.
func (r *VMRun) Alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Interrupt sends SIGINT to `tart run`, as `tart stop` does: once the VM is
// up, tart stops it (destructively) and exits 0. Tarty uses it when `tart stop`
// cannot find the VM yet: tart takes the VM's lock only after setting it up.
// A run that already exited is not an error.
func (r *VMRun) Interrupt() error {
	if err := interrupt(r.proc); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Kill sends SIGKILL to `tart run` (the VM dies with it).
func (r *VMRun) Kill() error {
	if err := r.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Run is Start with no RunOptions, its result on a channel that delivers it
// once and is then closed.
func (c *Client) Run(ctx context.Context, name string) (<-chan error, error) {
	r, err := c.Start(ctx, name, RunOptions{})
	if err != nil {
		return nil, err
	}
	ch := make(chan error, 1)
	go func() {
		<-r.done
		ch <- r.err
		close(ch)
	}()
	return ch, nil
}

// Start starts `tart run --no-graphics --no-audio name` detached in its own
// session, so it survives Tarty exiting or restarting, with stdout and stderr
// appended to LogPath(name).
//
// ctx bounds only the start: cancelling it after Start returns never touches
// the VM. A goroutine reaps the child and sets the result: nil for exit 0
// after a guest power-off or `tart stop`; an *Error for any other exit, with
// the exit code and the line of new log output that explains it; and an
// *Error with exit code 0 when the log says the guest crashed ("guest has
// stopped the virtual machine due to error"), which tart also exits 0 for.
//
// Early failures: Start waits up to the client's StartGrace for the process to
// exit. A failure in that window (the VM limit, a missing VM, a VM already
// running, Virtualization.framework refusing to start) is returned directly as
// Start's error, so callers can branch on VMLimit(err) or tarty.HostFix at
// once. The same failures can come later, after the grace (the limit is only
// known once Virtualization.framework tried to start the VM), as the run's
// result: callers must check both. With a negative StartGrace every exit comes
// as the result.
func (c *Client) Start(ctx context.Context, name string, opts RunOptions) (*VMRun, error) {
	if err := checkName("run", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tart run %s: %w", name, err)
	}
	logFile, err := c.openLog(name)
	if err != nil {
		return nil, fmt.Errorf("tart run %s: %w", name, err)
	}
	// Only output written from here on explains this run's exit.
	var offset int64
	if fi, err := logFile.Stat(); err == nil {
		offset = fi.Size()
	}

	args := []string{"run", "--no-graphics", "--no-audio"}
	if opts.Softnet {
		args = append(args, "--net-softnet")
	}
	// Not CommandContext: the VM must outlive ctx.
	cmd := exec.Command(c.path, append(args, name)...)
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile // the child writes the file directly: no copying goroutines
	cmd.SysProcAttr = detachedAttr()
	err = cmd.Start()
	logFile.Close() // the child holds its own descriptor
	if err != nil {
		return nil, c.newError("run", name, err)
	}
	logPath := c.LogPath(name)
	r := &VMRun{Name: name, PID: cmd.Process.Pid, proc: cmd.Process, done: make(chan struct{})}
	c.log.Info().Str("vm", name).Int("pid", r.PID).Str("log", logPath).Bool("softnet", opts.Softnet).Msg("tart run started")

	go func() {
		werr := cmd.Wait()
		r.err = c.runResult(name, werr, logPath, offset)
		if r.err == nil {
			c.log.Info().Str("vm", name).Int("pid", r.PID).Msg("tart run exited")
		} else {
			c.log.Info().Str("vm", name).Int("pid", r.PID).Err(r.err).Msg("tart run failed")
		}
		close(r.done)
	}()

	if c.startGrace < 0 {
		return r, nil
	}
	grace := time.NewTimer(c.startGrace)
	defer grace.Stop()
	select {
	case <-r.done:
		if r.err != nil {
			return nil, r.err
		}
		return r, nil
	case <-grace.C:
		return r, nil
	case <-ctx.Done():
		// The VM keeps running; ctx only bounded how long we watched it start.
		return r, nil
	}
}

// openLog opens LogPath(name) for appending. The directory is created 0700
// and the file 0600 (a VM's output may show its IP and guest errors), never
// through a symbolic link, and must be a regular file.
func (c *Client) openLog(name string) (*os.File, error) {
	if c.logDir == "" {
		return nil, errors.New("no log directory for tart run output (tartvm.Options.LogDir)")
	}
	if err := os.MkdirAll(c.logDir, 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	if fi, err := os.Stat(c.logDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// Made by someone else or an older Tarty: tighten it, as ssh does ~/.ssh.
		if err := os.Chmod(c.logDir, 0o700); err != nil {
			return nil, fmt.Errorf("log directory: %w", err)
		}
	}
	path := c.LogPath(name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|noFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && fi.Mode().Perm() != 0o600 {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// runResult turns the exit of `tart run` into nil or an *Error explained by the
// output it appended to its log.
func (c *Client) runResult(name string, werr error, logPath string, offset int64) error {
	out := readFrom(logPath, offset, maxRunOutput)
	if werr == nil {
		// tart exits 0 after a guest crash too: only its output tells.
		e := &Error{Verb: "run", Name: name, ExitCode: 0, output: string(out), path: c.path}
		if !e.GuestCrashed() {
			return nil
		}
		e.Stderr = crashLine(out)
		return e
	}
	e := c.newError("run", name, werr)
	if len(out) > 0 {
		e.Stderr = explainingLine(out)
		e.output = string(out)
	}
	return e
}

// crashLine is the line of run output that reports the guest's crash.
func crashLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "guest has stopped the virtual machine due to error") ||
			strings.Contains(l, "has been disconnected with error") {
			return l
		}
	}
	return ""
}

// readFrom reads up to max bytes of path starting at offset; errors yield nil
// (the exit code alone still explains the failure).
func readFrom(path string, offset int64, max int64) []byte {
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, max))
	return b
}

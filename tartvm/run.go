package tartvm

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// maxRunOutput bounds how much of a VM's new log output is read to explain its exit.
const maxRunOutput = 64 << 10

// Run starts `tart run --no-graphics --no-audio name` detached in its own
// session, so it survives Tarty exiting or restarting, with stdout and stderr
// appended to LogPath(name).
//
// ctx bounds only the start: cancelling it after Run returns never touches the
// VM. The returned channel delivers the exit of `tart run` once (nil for exit 0,
// which covers both a guest power-off and `tart stop`, else an *Error with the
// exit code and the line of new log output that explains it) and is then closed;
// a goroutine owned by the channel reaps the child.
//
// Early failures: Run waits up to the client's StartGrace for the process to
// exit. A failure in that window (the VM limit, a missing VM, a VM already
// running) is returned directly as Run's error with a nil channel, so callers can
// branch on VMLimit(err) at once. A failure after the grace comes on the channel,
// so callers must check both. With a negative StartGrace every exit comes on the
// channel.
func (c *Client) Run(ctx context.Context, name string) (<-chan error, error) {
	if err := checkName("run", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tart run %s: %w", name, err)
	}
	if err := os.MkdirAll(c.logDir, 0o750); err != nil {
		return nil, fmt.Errorf("tart run %s: log directory: %w", name, err)
	}
	logPath := c.LogPath(name)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("tart run %s: log file: %w", name, err)
	}
	// Only output written from here on explains this run's exit.
	var offset int64
	if fi, err := logFile.Stat(); err == nil {
		offset = fi.Size()
	}

	// Not CommandContext: the VM must outlive ctx.
	cmd := exec.Command(c.path, "run", "--no-graphics", "--no-audio", name)
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile // the child writes the file directly: no copying goroutines
	cmd.SysProcAttr = detachedAttr()
	err = cmd.Start()
	logFile.Close() // the child holds its own descriptor
	if err != nil {
		e := c.newError("run", name, err)
		return nil, e
	}
	pid := cmd.Process.Pid
	c.log.Info().Str("vm", name).Int("pid", pid).Str("log", logPath).Msg("tart run started")

	done := make(chan error, 1)
	go func() {
		werr := cmd.Wait()
		res := c.runResult(name, werr, logPath, offset)
		if res == nil {
			c.log.Info().Str("vm", name).Int("pid", pid).Msg("tart run exited")
		} else {
			c.log.Info().Str("vm", name).Int("pid", pid).Err(res).Msg("tart run failed")
		}
		done <- res
		close(done)
	}()

	if c.startGrace < 0 {
		return done, nil
	}
	grace := time.NewTimer(c.startGrace)
	defer grace.Stop()
	select {
	case res := <-done:
		if res != nil {
			return nil, res
		}
		again := make(chan error, 1)
		again <- nil
		close(again)
		return again, nil
	case <-grace.C:
		return done, nil
	case <-ctx.Done():
		// The VM keeps running; ctx only bounded how long we watched it start.
		return done, nil
	}
}

// runResult turns the exit of `tart run` into nil or an *Error explained by the
// output it appended to its log.
func (c *Client) runResult(name string, werr error, logPath string, offset int64) error {
	if werr == nil {
		return nil
	}
	e := c.newError("run", name, werr)
	if out := readFrom(logPath, offset, maxRunOutput); len(out) > 0 {
		e.Stderr = explainingLine(out)
		e.output = string(out)
	}
	return e
}

// readFrom reads up to max bytes of path starting at offset; errors yield nil
// (the exit code alone still explains the failure).
func readFrom(path string, offset int64, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, max))
	return b
}

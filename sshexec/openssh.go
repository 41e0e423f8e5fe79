package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// openssh runs commands with the system ssh binary. It exists because on
// macOS 15+ Local Network privacy may refuse a launchd-started process's own
// connections to the VM network while Apple's /usr/bin/ssh is allowed.
type openssh struct {
	opts Options
	path string
	kh   opensshKnownHosts
}

func newOpenSSH(opts Options, kh opensshKnownHosts) (*openssh, error) {
	if opts.Password != "" && opts.KeyFile == "" {
		return nil, errors.New("sshexec: the openssh client cannot log in with a password (it runs ssh with BatchMode=yes): set a key file, or use the native client")
	}
	if opts.KeyFile != "" {
		if _, err := os.Stat(opts.KeyFile); err != nil {
			return nil, fmt.Errorf("sshexec: key file: %w", err)
		}
	}
	for _, p := range []string{opts.KeyFile, kh.dir} {
		if strings.ContainsAny(p, "\"\r\n") {
			return nil, fmt.Errorf("sshexec: path %q cannot be passed to ssh", p)
		}
	}
	path, err := findSSH(opts.SSHPath)
	if err != nil {
		return nil, fmt.Errorf("sshexec: ssh binary: %w", err)
	}
	return &openssh{opts: opts, path: path, kh: kh}, nil
}

// args are ssh's options for a connection to image; the caller appends
// "--", host and the command. -F none keeps the operator's ~/.ssh/config
// (ControlMaster, ProxyCommand, ...) out of Tarty's connections.
func (o *openssh) args(image string, connectTimeout time.Duration) []string {
	seconds := func(d time.Duration) string { return strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))) }
	a := []string{"-F", "none", "-T",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=" + seconds(connectTimeout),
		"-o", "ServerAliveInterval=" + seconds(o.opts.Keepalive),
		"-o", "ServerAliveCountMax=" + strconv.Itoa(keepaliveMax),
		"-o", "UserKnownHostsFile=" + sshPathValue(o.kh.file(image)),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "HostKeyAlias=" + o.kh.alias(image),
		"-o", "UpdateHostKeys=no",
		"-o", "CheckHostIP=no",
		"-o", "LogLevel=INFO", // "Timeout, server not responding" is INFO: needed to explain a 255
		"-p", strconv.Itoa(o.opts.Port),
		"-l", o.opts.User,
	}
	if o.opts.KeyFile != "" {
		a = append(a, "-o", "IdentityFile="+sshPathValue(o.opts.KeyFile), "-o", "IdentitiesOnly=yes")
	}
	return a
}

// sshPathValue protects a path in an -o option: ssh splits values at spaces
// (macOS state directories live under "Application Support") and expands
// %-tokens in file names.
func sshPathValue(p string) string {
	return `"` + strings.ReplaceAll(p, "%", "%%") + `"`
}

func (o *openssh) login(ctx context.Context, image, host string, timeout time.Duration) error {
	// ssh's ConnectTimeout covers the TCP connect and the SSH handshake;
	// the extra second lets ssh report its own timeout first.
	lctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	err := o.run(lctx, image, host, "exit 0", nil, nil, nil, timeout)
	if err != nil && ctx.Err() == nil && lctx.Err() != nil {
		return fmt.Errorf("no SSH login within %s: %w", timeout, lctx.Err())
	}
	return err
}

func (o *openssh) exec(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	return o.run(ctx, image, host, command, stdin, stdout, stderr, o.opts.attemptTimeout())
}

func (o *openssh) run(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer, timeout time.Duration) error {
	if err := o.kh.ensureDir(); err != nil {
		return err
	}
	args := append(o.args(image, timeout), "--", host, command)
	cmd := exec.CommandContext(ctx, o.path, args...)
	// ssh closes the connection on SIGTERM; WaitDelay then kills it and
	// drops the pipes if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	// stdin goes through a pipe, never an argument or a file on the host.
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	// ssh writes its own diagnostics to the same stderr as the remote
	// command (it closes extra descriptors, so -E cannot split them):
	// stream everything, keep the tail to explain a failure.
	diag := &tailBuffer{max: 8192}
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(stderr, diag)
	} else {
		cmd.Stderr = diag
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("cancelled: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", o.path, err)
	}
	if code := ee.ExitCode(); code != 255 && code >= 0 {
		return &ExitError{Status: code}
	}
	return o.classify(image, host, diag.String(), ee)
}

var presentedFP = regexp.MustCompile(`key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/=]+)`)

// sshFailure matches the messages ssh prints when it, not the remote
// command, fails with status 255.
var sshFailure = regexp.MustCompile(`(?m)^(ssh: |kex_exchange_identification|Connection (to .* )?(closed|timed out|reset)|Connection timed out|Timeout, server|client_loop: |Bad (configuration|owner)|banner exchange|Load key|no such identity|Host key|Permission denied|Could not|Unable to|Received disconnect|Disconnected from)`)

// classify turns an ssh exit status 255 into a typed error: a changed host
// key, refused credentials, another ssh failure, or (when ssh said nothing)
// the remote command's own exit status 255.
func (o *openssh) classify(image, host, diag string, ee *exec.ExitError) error {
	if strings.Contains(diag, "REMOTE HOST IDENTIFICATION HAS CHANGED") || strings.Contains(diag, "Host key verification failed") {
		presented := "unknown"
		if m := presentedFP.FindStringSubmatch(diag); m != nil {
			presented = strings.TrimSuffix(m[1], ".")
		}
		return &HostKeyError{Image: image, Host: host, Trusted: o.kh.fingerprints(image), Presented: presented}
	}
	if strings.Contains(diag, "Permission denied (") {
		return fmt.Errorf("%w: %s", ErrAuth, sshSaid(diag))
	}
	if ee.ExitCode() == 255 && !sshFailure.MatchString(diag) {
		return &ExitError{Status: 255}
	}
	return fmt.Errorf("ssh: %s: %s", ee, sshSaid(diag))
}

// sshSaid sums up ssh's own lines in diag (the last three), leaving out
// whatever the remote command wrote to stderr.
func sshSaid(diag string) string {
	var said []string
	for _, l := range strings.Split(diag, "\n") {
		l = strings.TrimSpace(l)
		if sshFailure.MatchString(l) {
			said = append(said, l)
		}
	}
	if len(said) == 0 {
		return lastLine(diag)
	}
	return strings.Join(said[max(0, len(said)-3):], "; ")
}

package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Client names accepted in Options.Client.
const (
	ClientNative  = "native"  // golang.org/x/crypto/ssh in process
	ClientOpenSSH = "openssh" // the system ssh binary (macOS Local Network privacy exempts Apple's /usr/bin/ssh)
)

// Defaults applied by New to zero fields.
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 2 * time.Minute
	DefaultKeepalive      = 15 * time.Second
	DefaultStartLog       = "tarty-start.log"

	// maxAttempt caps one connection attempt (TCP connect, banner, key
	// exchange, authentication) so WaitReady keeps retrying a guest whose sshd
	// accepted the connection but hangs.
	maxAttempt = 30 * time.Second
	// keepaliveMax unanswered keepalives mean the guest is gone (OpenSSH's
	// ServerAliveCountMax default).
	keepaliveMax = 3
)

// Options configures a Client. Zero values take the defaults above.
type Options struct {
	User     string // guest login; required
	Port     int    // guest sshd port; default 22
	KeyFile  string // private key; empty: SSH agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa
	Password string // for password and keyboard-interactive logins (native only)
	Client   string // ClientNative (default) or ClientOpenSSH

	// ConnectTimeout bounds WaitReady's retries; each single connection
	// attempt is bounded by it too, capped at 30 s.
	ConnectTimeout time.Duration
	// KnownHostsFile is the trust-on-first-use store of host keys per image
	// (in Tarty's state directory); required. The openssh client keeps one
	// known_hosts file per image in KnownHostsFile's directory.
	KnownHostsFile string
	// SSHPath is the ssh binary of the openssh client: default /usr/bin/ssh,
	// else "ssh" from PATH.
	SSHPath string
	Logger  zerolog.Logger // zero value logs nothing
	// Keepalive is the interval of keepalive probes on a session; three
	// unanswered probes in a row close it. Default 15 s.
	Keepalive time.Duration
	// StartLog is the guest file (relative: to the login's home directory)
	// that receives the output of commands started by Start; appended to.
	StartLog string
	// Dial replaces the native client's TCP dial (see DialFunc); nil: TCP.
	Dial DialFunc
}

// transport is what differs between the two clients: how one command runs
// over one connection. Everything else (retries, the detach wrapper, argument
// checks) is shared in Client.
type transport interface {
	// login connects and authenticates once, within timeout, then disconnects.
	login(ctx context.Context, image, host string, timeout time.Duration) error
	// exec runs command on a new connection. A non-zero exit is *ExitError.
	exec(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer) error
}

// Client runs commands in guests over SSH. It is safe for concurrent use;
// every call opens its own connection. It satisfies scheduler.Guest.
type Client struct {
	opts Options
	log  zerolog.Logger
	t    transport

	// Both clients' stores, whichever runs: ForgetHostKey and CopyHostKey
	// keep them alike.
	store *hostKeyStore
	oh    opensshKnownHosts
}

// New checks opts, applies defaults and builds the chosen client.
func New(opts Options) (*Client, error) {
	if opts.User == "" {
		return nil, errors.New("sshexec: user is required")
	}
	if opts.KnownHostsFile == "" {
		return nil, errors.New("sshexec: known hosts file is required")
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("sshexec: port %d out of range", opts.Port)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.StartLog == "" {
		opts.StartLog = DefaultStartLog
	}
	if opts.Client == "" {
		opts.Client = ClientNative
	}
	c := &Client{opts: opts, log: opts.Logger.With().Str("component", "sshexec").Str("client", opts.Client).Logger()}
	c.store = newHostKeyStore(opts.KnownHostsFile, c.log)
	c.oh = opensshKnownHosts{dir: opensshKnownHostsDir(opts.KnownHostsFile)}
	switch opts.Client {
	case ClientNative:
		n, err := newNative(opts, c.store, c.log)
		if err != nil {
			return nil, err
		}
		c.t = n
	case ClientOpenSSH:
		if opts.Dial != nil {
			return nil, errDialOpenSSH
		}
		o, err := newOpenSSH(opts, c.oh)
		if err != nil {
			return nil, err
		}
		c.t = o
	default:
		return nil, fmt.Errorf("sshexec: unknown client %q (want %s or %s)", opts.Client, ClientNative, ClientOpenSSH)
	}
	return c, nil
}

// Run runs command in the guest through the login's shell, feeding it stdin
// (nil: empty) and streaming its output. A non-zero exit is *ExitError.
// Cancelling ctx signals the command (native client) and closes the session.
func (c *Client) Run(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := checkTarget(image, host); err != nil {
		return err
	}
	word := firstWord(command)
	c.log.Debug().Str("image", image).Str("host", host).Str("cmd", word).Msg("ssh run")
	err := c.t.exec(ctx, image, host, command, stdin, stdout, stderr)
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		exitErr.Command = word
		return exitErr
	}
	if err != nil {
		return fmt.Errorf("ssh %s@%s run %s: %w", c.opts.User, host, word, err)
	}
	return nil
}

// ForgetHostKey drops the host key trusted for image (from both clients'
// stores), so the next connection trusts whatever key the guest presents.
func (c *Client) ForgetHostKey(image string) error {
	if err := checkImage(image); err != nil {
		return err
	}
	if err := errors.Join(c.store.forget(image), c.oh.forget(image)); err != nil {
		return fmt.Errorf("forget host key of image %q: %w", image, err)
	}
	c.log.Info().Str("image", image).Msg("forgot ssh host key")
	return nil
}

// CopyHostKey makes image to trust exactly what image from trusts (nothing,
// if from has no key), in both clients' stores: the trusted key follows an
// image when the nightly rebuild promotes a build or rolls it back.
func (c *Client) CopyHostKey(from, to string) error {
	if err := errors.Join(checkImage(from), checkImage(to)); err != nil {
		return err
	}
	if from == to {
		return nil
	}
	if err := errors.Join(c.store.copy(from, to), c.oh.copy(from, to)); err != nil {
		return fmt.Errorf("copy host key of image %q to %q: %w", from, to, err)
	}
	c.log.Info().Str("from", from).Str("to", to).Msg("copied trusted ssh host key")
	return nil
}

// checkImage rejects image names the host-key store cannot hold: white space
// would split its line, a leading '#' would make the line a comment (read back
// as no key, so any key would be trusted again), and a leading '-' is never a
// tart image (tart would read it as a flag).
func checkImage(image string) error {
	if image == "" || strings.ContainsAny(image, " \t\r\n") || strings.HasPrefix(image, "#") || strings.HasPrefix(image, "-") {
		return fmt.Errorf("sshexec: invalid image name %q", image)
	}
	return nil
}

func checkTarget(image, host string) error {
	if err := checkImage(image); err != nil {
		return err
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t\r\n@") {
		return fmt.Errorf("sshexec: invalid host %q", host)
	}
	return nil
}

// attemptTimeout is how long one connection attempt may take.
func (o Options) attemptTimeout() time.Duration {
	return min(o.ConnectTimeout, maxAttempt)
}

// findSSH resolves the ssh binary: an explicit path, else /usr/bin/ssh (the
// Apple-signed one on macOS), else PATH.
func findSSH(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	if fi, err := os.Stat("/usr/bin/ssh"); err == nil && !fi.IsDir() {
		return "/usr/bin/ssh", nil
	}
	return exec.LookPath("ssh")
}

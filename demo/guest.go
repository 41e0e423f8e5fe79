//go:build unix

package demo

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Guest is the demo's macOS guest: an SSH server on 127.0.0.1 that logs one
// user in with one public key and runs each session's command with
// `/bin/sh -c`, as sshd runs it through a POSIX login shell, with HOME set to
// a directory of the demo. Every fake VM's address leads here, so every
// "guest" is this host: the runner it starts is the fake runner, and its
// shutdown command powers the fake VM off through the fake tart's files.
//
// It serves what Tarty's native SSH client needs: exec requests, stdin
// delivered and then closed at the client's EOF, stdout and stderr,
// exit-status (or exit-signal), signal requests (sent to the command's
// process group) and keepalive global requests. Each command runs in its own
// process group; Close kills every group it started, so a detached runner
// cannot outlive the demo.
type Guest struct {
	opts GuestOptions
	ln   net.Listener
	cfg  *ssh.ServerConfig

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	groups map[int]struct{} // process groups started
	wg     sync.WaitGroup
}

// GuestOptions configure a Guest.
type GuestOptions struct {
	User      string        // the only login accepted
	ClientKey ssh.PublicKey // the only key accepted
	HostKey   ssh.Signer
	Home      string   // HOME and working directory of every command
	Env       []string // the commands' whole environment besides HOME, USER, LOGNAME and SHELL
	// OnCommand, when set, hears of every command when it starts (status
	// -1) and when it ends (its exit status, or 128+signal).
	OnCommand func(command string, status int)
}

// refused are commands the demo's guest never runs: it is the host itself,
// and a misconfigured shutdown command (Tarty's default is
// `sudo -n shutdown -h now`) must not power it off.
var refused = regexp.MustCompile(`(^|[\s;&|(` + "`" + `'"])(sudo|shutdown|reboot|halt|poweroff)(\s|$|[;&|)'"])`)

// StartGuest listens on 127.0.0.1 at a free port and serves until Close.
func StartGuest(opts GuestOptions) (*Guest, error) {
	if opts.User == "" || opts.ClientKey == nil || opts.HostKey == nil || opts.Home == "" {
		return nil, errors.New("demo guest: user, client key, host key and home are required")
	}
	g := &Guest{opts: opts, conns: map[net.Conn]struct{}{}, groups: map[int]struct{}{}}
	want := opts.ClientKey.Marshal()
	g.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() == opts.User && string(key.Marshal()) == string(want) {
				return nil, nil
			}
			return nil, fmt.Errorf("demo guest: key or user %q not accepted", md.User())
		},
		// The client may offer an SSH agent's keys before the demo's.
		MaxAuthTries:  -1,
		ServerVersion: "SSH-2.0-TartyDemoGuest",
	}
	g.cfg.AddHostKey(opts.HostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo guest: %w", err)
	}
	g.ln = ln
	g.wg.Add(1)
	go g.accept()
	return g, nil
}

// Port is the TCP port the guest listens on.
func (g *Guest) Port() int { return g.ln.Addr().(*net.TCPAddr).Port }

// Close stops listening, drops every connection and kills every process
// group the guest started (the detached runners among them).
func (g *Guest) Close() {
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.ln.Close()
	g.KillAll() // a command still running ends, and with it its session
	g.wg.Wait()
}

// KillAll sends SIGKILL to every process group the guest started.
func (g *Guest) KillAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for pgid := range g.groups {
		// The group outlives its leader while a member (a detached
		// runner) lives; an empty group's id is not reused meanwhile.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// Alive lists the process groups the guest started that still have a member.
func (g *Guest) Alive() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for pgid := range g.groups {
		if syscall.Kill(-pgid, 0) == nil {
			out = append(out, pgid)
		}
	}
	return out
}

func (g *Guest) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			c.Close()
			return
		}
		g.conns[c] = struct{}{}
		g.mu.Unlock()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.serve(c)
			g.mu.Lock()
			delete(g.conns, c)
			g.mu.Unlock()
		}()
	}
}

func (g *Guest) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake
	sc, chans, reqs, err := ssh.NewServerConn(c, g.cfg)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com gets its (negative) reply
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.session(ch, creqs)
		}()
	}
}

// session serves one channel: one exec, and signals for it.
type session struct {
	g    *Guest
	ch   ssh.Channel
	mu   sync.Mutex
	pgid int // 0 until the command started
}

func (g *Guest) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	s := &session{g: g, ch: ch}
	started := false
	var done chan struct{}
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			_ = req.Reply(true, nil)
			done = make(chan struct{})
			go func() {
				defer close(done)
				s.run(p.Command)
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				s.signal(p.Signal)
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		default: // env, pty-req, shell, subsystem: not offered
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	if done != nil {
		<-done
	} else {
		ch.Close()
	}
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return "KILL"
}

func (s *session) signal(name string) {
	sig, ok := signals[name]
	s.mu.Lock()
	pgid := s.pgid
	s.mu.Unlock()
	if ok && pgid > 0 {
		_ = syscall.Kill(-pgid, sig)
	}
}

// run runs command to its end, sends its exit status and closes the channel.
func (s *session) run(command string) {
	g := s.g
	defer s.ch.Close()
	exit := func(status uint32) {
		_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	}
	if refused.MatchString(command) {
		fmt.Fprintf(s.ch.Stderr(), "demo guest: refusing %q: this guest is the host itself\n", command)
		exit(126)
		return
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = g.opts.Home
	cmd.Env = append(append([]string{}, g.opts.Env...),
		"HOME="+g.opts.Home, "USER="+g.opts.User, "LOGNAME="+g.opts.User, "SHELL=/bin/sh")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = s.ch, s.ch.Stderr()
	// A command that leaves a child holding its output (the detach wrapper
	// does not) must not hold the session forever.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err == nil {
		g.mu.Lock()
		if g.closed {
			err = errors.New("the guest is shutting down")
		} else if err = cmd.Start(); err == nil {
			g.groups[cmd.Process.Pid] = struct{}{}
		}
		g.mu.Unlock()
	}
	if err != nil {
		fmt.Fprintf(s.ch.Stderr(), "demo guest: %v\n", err)
		exit(127)
		return
	}
	s.mu.Lock()
	s.pgid = cmd.Process.Pid
	s.mu.Unlock()
	if g.opts.OnCommand != nil {
		g.opts.OnCommand(command, -1)
	}
	go func() {
		// stdin until the client's EOF (or the channel's end), then EOF.
		_, _ = io.Copy(stdin, s.ch)
		stdin.Close()
	}()
	err = cmd.Wait()
	status := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
			_ = s.ch.CloseWrite()
			_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: signalName(ws.Signal())}))
			break
		}
		status = ee.ExitCode()
		_ = s.ch.CloseWrite()
		exit(uint32(status))
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		status = 255
		fmt.Fprintf(s.ch.Stderr(), "demo guest: %v\n", err)
		_ = s.ch.CloseWrite()
		exit(255)
	default:
		_ = s.ch.CloseWrite()
		exit(0)
	}
	if g.opts.OnCommand != nil {
		g.opts.OnCommand(command, status)
	}
}

// guestEnv is the environment of guest commands: PATH and TMPDIR, so that
// temporary files (the detach wrapper's) stay in the demo's directory.
func guestEnv(tmp string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/bin:/bin:/usr/sbin:/sbin"
	}
	return []string{"PATH=" + path, "TMPDIR=" + tmp, "LANG=C"}
}

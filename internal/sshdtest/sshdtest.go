// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for tests, as the
// current user, with its own host key, authorized keys and config in a test
// temp dir. When sshd or ssh-keygen is missing the test is skipped, unless
// TARTY_REQUIRE_SSHD=1, which turns the skip into a failure (CI sets it after
// installing openssh-server and openssh-client).
package sshdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tartyci/tarty/internal/syncbuf"
)

// Require returns the path of a binary, skipping (or failing, when
// TARTY_REQUIRE_SSHD=1) the test when it is absent.
func Require(t testing.TB, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	msg := fmt.Sprintf("%s not found (install openssh-server and openssh-client, e.g. apt-get install -y openssh-server)", name)
	if os.Getenv("TARTY_REQUIRE_SSHD") == "1" {
		t.Fatal(msg + "; TARTY_REQUIRE_SSHD=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// Key is an ed25519 key pair made by ssh-keygen.
type Key struct {
	Private string // path of the private key file (0600)
	Public  string // authorized_keys line
	Signer  ssh.Signer
}

// NewKey makes a key pair in dir.
func NewKey(t testing.TB, dir, name string) Key {
	t.Helper()
	keygen := Require(t, "ssh-keygen", "/usr/bin/ssh-keygen")
	path := filepath.Join(dir, name)
	out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v: %s", name, err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Private: path, Public: strings.TrimSpace(string(pub)), Signer: signer}
}

// Fingerprint is the SHA256 fingerprint of the key, as ssh prints it.
func (k Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Signer.PublicKey()) }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one sshd configuration; Start and Stop it any number of times.
type Server struct {
	Port int
	// SecondHost is another loopback address sshd listens on, standing in
	// for a second clone of the same image: 127.0.0.2 on Linux, "" elsewhere
	// (macOS routes only 127.0.0.1).
	SecondHost string
	User       string // the current user, whom sshd lets in
	ClientKey  Key    // authorized
	HostKey    Key

	t    testing.TB
	sshd string
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncbuf.Buffer
}

// New prepares a server on a free port without starting it.
func New(t testing.TB) *Server {
	t.Helper()
	sshd := Require(t, "sshd", "/usr/sbin/sshd")
	dir := t.TempDir()
	s := &Server{t: t, sshd: sshd, dir: dir, Port: FreePort(t), log: &syncbuf.Buffer{}}
	if runtime.GOOS == "linux" {
		s.SecondHost = "127.0.0.2"
	}
	s.User = currentUser(t)
	s.ClientKey = NewKey(t, dir, "client_key")
	s.HostKey = NewKey(t, dir, "host_key")
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(s.ClientKey.Public+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory; missing in containers.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	return s
}

// Start starts a new server and waits until it accepts connections.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New(t)
	s.Start()
	return s
}

// Authorize adds a public key line to the authorized keys.
func (s *Server) Authorize(line string) {
	f, err := os.OpenFile(filepath.Join(s.dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		s.t.Fatal(err)
	}
}

// RotateHostKey gives the server a new host key, used from its next Start.
func (s *Server) RotateHostKey() {
	for _, f := range []string{"host_key", "host_key.pub"} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil {
			s.t.Fatal(err)
		}
	}
	s.HostKey = NewKey(s.t, s.dir, "host_key")
}

func (s *Server) config() string {
	c := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin yes
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel VERBOSE
`, s.Port, filepath.Join(s.dir, "host_key"), filepath.Join(s.dir, "sshd.pid"), filepath.Join(s.dir, "authorized_keys"))
	if s.SecondHost != "" {
		c += "ListenAddress " + s.SecondHost + "\n"
	}
	if penaltiesSupported(s.t, s.sshd, s.dir, c) {
		// OpenSSH 9.8+ would otherwise lock out 127.0.0.1 after the
		// tests' deliberate failures.
		c += "PerSourcePenalties no\n"
	}
	return c
}

var (
	penaltiesOnce sync.Once
	penaltiesOK   bool
)

func penaltiesSupported(t testing.TB, sshd, dir, base string) bool {
	penaltiesOnce.Do(func() {
		cfg := filepath.Join(dir, "probe_config")
		if err := os.WriteFile(cfg, []byte(base+"PerSourcePenalties no\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		penaltiesOK = exec.Command(sshd, "-t", "-f", cfg).Run() == nil
	})
	return penaltiesOK
}

// Start runs sshd and waits, polling a TCP dial, until it listens.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("sshdtest: already running")
	}
	cfg := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(s.config()), 0o600); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.t.Fatalf("sshd exited at start: %s\n%s", cmd.ProcessState, s.log.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sshd not listening on %s after 15s: %v\n%s", addr, err, s.log.String())
		}
	}
}

// Stop kills the listening sshd. Sessions already open keep running, as
// with a real sshd restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { return s.log.String() }

// Dir is the server's temp dir, private to the test.
func (s *Server) Dir() string { return s.dir }

func currentUser(t testing.TB) string {
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	return u.Username
}

package sshexec_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// faultServer is an in-process x/crypto/ssh server for failures a real sshd
// does not produce on demand: it drops the TCP connection mid-command, or
// goes silent without closing it (a guest that lost power).
type faultServer struct {
	Port    int
	KeyFile string // an authorized client key, OpenSSH format
	HostKey ssh.Signer

	ln      net.Listener
	release chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

type faultAuth int

const (
	authPublicKey faultAuth = iota
	authPassword
	authKeyboardInteractive
)

const faultPassword = "correct horse"

// startFaultServer serves commands: "ok" exits 0, "drop" writes a line and
// closes the TCP connection, "freeze" writes a line and then neither reads
// nor writes again.
func startFaultServer(t *testing.T, auth faultAuth) *faultServer {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	clientSigner, _ := ssh.NewSignerFromKey(clientPriv)
	block, err := ssh.MarshalPrivateKey(clientPriv, "fault client")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_fault")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := &ssh.ServerConfig{}
	switch auth {
	case authPublicKey:
		want := clientSigner.PublicKey().Marshal()
		cfg.PublicKeyCallback = func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(want) {
				return nil, nil
			}
			return nil, errDenied
		}
	case authPassword:
		cfg.PasswordCallback = func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if string(pw) == faultPassword {
				return nil, nil
			}
			return nil, errDenied
		}
	case authKeyboardInteractive:
		cfg.KeyboardInteractiveCallback = func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ask("", "", []string{"Verification code: ", "Password: "}, []bool{true, false})
			if err == nil && len(ans) == 2 && ans[1] == faultPassword {
				return nil, nil
			}
			return nil, errDenied
		}
	}
	cfg.AddHostKey(hostSigner)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &faultServer{Port: ln.Addr().(*net.TCPAddr).Port, KeyFile: keyFile, HostKey: hostSigner,
		ln: ln, release: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &freezeConn{Conn: c, release: s.release}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(fc, cfg)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(s.release)
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

type deniedError struct{}

func (deniedError) Error() string { return "denied" }

var errDenied = deniedError{}

func (s *faultServer) serve(fc *freezeConn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(fc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // answers keepalives while not frozen
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(false, nil)
					continue
				}
				var p struct{ Command string }
				if ssh.Unmarshal(r.Payload, &p) != nil {
					r.Reply(false, nil)
					continue
				}
				r.Reply(true, nil)
				go s.run(p.Command, ch, fc)
			}
		}()
	}
}

func (s *faultServer) run(command string, ch ssh.Channel, fc *freezeConn) {
	switch command {
	case "ok", "exit 0":
		io.Copy(io.Discard, ch)
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, 0)
		ch.SendRequest("exit-status", false, status)
		ch.Close()
	case "drop":
		io.WriteString(ch, "partial output\n")
		fc.Conn.Close()
	case "freeze":
		io.WriteString(ch, "frozen\n")
		fc.freeze()
	default:
		io.WriteString(ch.Stderr(), "unknown command\n")
		ch.SendRequest("exit-status", false, []byte{0, 0, 0, 127})
		ch.Close()
	}
}

// freezeConn stops delivering anything the client sends once frozen, so the
// server never answers again while the TCP connection stays open.
type freezeConn struct {
	net.Conn
	frozen  atomic.Bool
	release chan struct{}
}

func (c *freezeConn) freeze() { c.frozen.Store(true) }

func (c *freezeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.frozen.Load() {
		<-c.release
		return 0, io.EOF
	}
	return n, err
}

// silentListener accepts TCP connections and never sends an SSH banner.
func silentListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

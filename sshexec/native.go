package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// native runs commands with golang.org/x/crypto/ssh, one connection per call.
type native struct {
	opts  Options
	auth  *nativeAuth
	store *hostKeyStore
	log   zerolog.Logger
}

func newNative(opts Options, store *hostKeyStore, log zerolog.Logger) (*native, error) {
	a, err := loadAuth(opts, log)
	if err != nil {
		return nil, err
	}
	return &native{opts: opts, auth: a, store: store, log: log}, nil
}

// conn is one authenticated connection with its keepalive loop.
type conn struct {
	c    *ssh.Client
	ka   *keepalive
	once sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		c.ka.halt()
		c.c.Close()
		c.ka.wait()
	})
}

// connect dials, checks the host key and authenticates, all within timeout
// (and ctx).
func (n *native) connect(ctx context.Context, image, host string, timeout time.Duration) (*conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(n.opts.Port))
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	raw, err := n.dial(dctx, addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	// The deadline bounds a guest that accepts but never finishes the
	// handshake; AfterFunc closes the socket when ctx is cancelled.
	deadline, _ := dctx.Deadline()
	_ = raw.SetDeadline(deadline)
	stopWatch := context.AfterFunc(dctx, func() { raw.Close() })

	algos, err := n.store.algorithms(image)
	if err != nil {
		stopWatch()
		raw.Close()
		return nil, err
	}
	methods, release := n.auth.methods(n.log)
	defer release()
	cfg := &ssh.ClientConfig{
		User:              n.opts.User,
		Auth:              methods,
		HostKeyCallback:   n.store.callback(image),
		HostKeyAlgorithms: algos,
	}
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	if !stopWatch() && err == nil {
		// ctx or the timeout fired just as the handshake finished.
		sc.Close()
		err = dctx.Err()
	}
	if err != nil {
		return nil, n.handshakeError(ctx, addr, timeout, err)
	}
	_ = raw.SetDeadline(time.Time{})
	c := ssh.NewClient(sc, chans, reqs)
	return &conn{c: c, ka: startKeepalive(c, n.opts.Keepalive)}, nil
}

func (n *native) handshakeError(ctx context.Context, addr string, timeout time.Duration, err error) error {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk):
		return hk
	case ctx.Err() != nil:
		return fmt.Errorf("connect %s: %w", addr, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("connect %s: no SSH handshake within %s: %w", addr, timeout, err)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("connect %s as %s: %w: %v", addr, n.opts.User, ErrAuth, err)
	default:
		return fmt.Errorf("connect %s: %w", addr, err)
	}
}

func (n *native) login(ctx context.Context, image, host string, timeout time.Duration) error {
	c, err := n.connect(ctx, image, host, timeout)
	if err != nil {
		return err
	}
	c.close()
	return nil
}

func (n *native) exec(ctx context.Context, image, host, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := n.connect(ctx, image, host, n.opts.attemptTimeout())
	if err != nil {
		return err
	}
	defer c.close()
	sess, err := c.c.NewSession()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(command); err != nil {
		return fmt.Errorf("start command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Ask sshd to signal the command's process group, then drop the
		// session and the connection so nothing waits on the guest.
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		c.close()
		<-done
		return fmt.Errorf("cancelled: %w", ctx.Err())
	}
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitStatus(), Signal: ee.Signal()}
	}
	if kerr := c.ka.err(); kerr != nil {
		return kerr
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return fmt.Errorf("connection lost before the command exited: %w", err)
	}
	return fmt.Errorf("session: %w", err)
}

// keepalive sends keepalive@openssh.com requests every interval and closes
// the connection when one goes unanswered for keepaliveMax intervals, so a
// guest that vanished (powered off, network gone) ends the session instead
// of leaving it hanging.
type keepalive struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	dead error
}

func startKeepalive(c *ssh.Client, interval time.Duration) *keepalive {
	k := &keepalive{stop: make(chan struct{}), done: make(chan struct{})}
	go k.run(c, interval)
	return k
}

func (k *keepalive) run(c *ssh.Client, interval time.Duration) {
	defer close(k.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		// The sender ends when the reply arrives or the connection closes;
		// the owner always closes it.
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				return // connection already gone; the session reports it
			}
		case <-time.After(interval * keepaliveMax):
			k.mu.Lock()
			k.dead = fmt.Errorf("guest stopped answering: no keepalive reply in %s", interval*keepaliveMax)
			k.mu.Unlock()
			c.Close()
			return
		case <-k.stop:
			return
		}
	}
}

func (k *keepalive) halt()      { k.once.Do(func() { close(k.stop) }) }
func (k *keepalive) wait()      { <-k.done }
func (k *keepalive) err() error { k.mu.Lock(); defer k.mu.Unlock(); return k.dead }

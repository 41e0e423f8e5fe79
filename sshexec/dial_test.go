package sshexec_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tartyci/tarty/internal/sshdtest"
	"github.com/tartyci/tarty/sshexec"
)

// A custom dialer carries the native client's SSH: the host is any string the
// dialer understands (the Orchard backend's "orchard-vm:<name>"), and the
// port arrives in addr.
func TestDialReplacesTCP(t *testing.T) {
	srv := sshdtest.Start(t)
	s := newSetup(t, srv, sshexec.ClientNative)
	var dialled atomic.Int32
	var seen atomic.Value
	c := s.client(t, func(o *sshexec.Options) {
		o.Port = 2222 // only the dialer's own mapping reaches sshd
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialled.Add(1)
			seen.Store(network + " " + addr)
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != "orchard-vm:guest-1" || port != "2222" {
				return nil, errors.New("unexpected address " + addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port)))
		}
	})
	ctx := ctxT(t, 20e9)
	if err := c.WaitReady(ctx, "img", "orchard-vm:guest-1"); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	var out bytes.Buffer
	if err := c.Run(ctx, "img", "orchard-vm:guest-1", "echo through-the-dialer", nil, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.TrimSpace(out.String()) != "through-the-dialer" {
		t.Errorf("output %q", out.String())
	}
	if dialled.Load() < 2 {
		t.Errorf("dialer used %d times, want every connection", dialled.Load())
	}
	if got := seen.Load(); got != "tcp [orchard-vm:guest-1]:2222" {
		t.Errorf("dialer got %q", got)
	}
}

func TestDialErrorIsReported(t *testing.T) {
	s := &setup{opts: sshexec.Options{User: "u", KnownHostsFile: t.TempDir() + "/kh", Password: "x", ConnectTimeout: 500e6}}
	c := s.client(t, func(o *sshexec.Options) {
		o.Dial = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("port-forward refused: VM is in a terminal state")
		}
	})
	err := c.WaitReady(ctxT(t, 5e9), "img", "orchard-vm:gone")
	if err == nil || !strings.Contains(err.Error(), "terminal state") {
		t.Fatalf("WaitReady = %v, want the dialer's error", err)
	}
}

func TestDialNeedsNativeClient(t *testing.T) {
	_, err := sshexec.New(sshexec.Options{User: "u", KnownHostsFile: t.TempDir() + "/kh", Client: sshexec.ClientOpenSSH,
		SSHPath: "/bin/sh",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "native") {
		t.Fatalf("New(openssh, Dial) = %v, want a refusal naming the native client", err)
	}
}

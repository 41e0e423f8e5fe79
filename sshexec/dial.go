package sshexec

import (
	"context"
	"errors"
	"net"
)

// DialFunc opens the byte stream the native client speaks SSH over, for
// guests that are not reachable by TCP from Tarty's host: with the Orchard
// backend, addr is "[orchard-vm:<name>]:<port>" and the stream is the
// controller's port-forward WebSocket. network is always "tcp". The returned
// connection must outlive ctx, which bounds only the dial; it must support
// deadlines (they bound the SSH handshake).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// errDialOpenSSH refuses Options.Dial with the openssh client, which opens
// its own TCP connections.
var errDialOpenSSH = errors.New("sshexec: a custom dialer (Options.Dial, used by the Orchard backend) needs the native client, not openssh")

// dial opens the connection for addr: Options.Dial when set, else TCP.
func (n *native) dial(ctx context.Context, addr string) (net.Conn, error) {
	if n.opts.Dial != nil {
		return n.opts.Dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

package orchard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// DefaultForwardWait is how long the controller may wait for the VM to run
// and its port to answer before a port-forward fails (its own default is 10 s).
const DefaultForwardWait = 10 * time.Second

// PortForward opens a TCP stream to port in VM name through the controller:
// GET /v1/vms/{name}/port-forward?port=P&wait=S upgraded to a WebSocket whose
// binary messages carry the bytes. ctx bounds only the set-up; Close the
// connection when done. The controller's answers before the upgrade are
// *APIError: 404 (no VM), 408 (not running on its worker within wait), 417
// (the VM failed), 503 (ErrUnavailable: its worker is disconnected), 500 (the
// guest's port kept refusing within wait).
func (c *Client) PortForward(ctx context.Context, name string, port int, wait time.Duration) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("orchard: port %d out of range", port)
	}
	if wait <= 0 {
		wait = DefaultForwardWait
	}
	secs := max(1, int(wait.Round(time.Second)/time.Second))
	path := "/v1/vms/" + url.PathEscape(name) + "/port-forward"
	u := c.endpoint(path, url.Values{"port": {strconv.Itoa(port)}, "wait": {strconv.Itoa(secs)}})
	h := http.Header{}
	c.header(h)
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			msg := ""
			if resp.Body != nil {
				msg = readMessage(resp.Body)
			}
			return nil, classify(http.MethodGet, path, resp.StatusCode, msg)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("orchard port-forward %s:%d: %w", name, port, ctx.Err())
		}
		return nil, fmt.Errorf("orchard port-forward %s:%d: %w", name, port, err)
	}
	return &forwardConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), name: name, port: port}, nil
}

// forwardConn is a port-forward as a net.Conn, naming its VM in its addresses.
type forwardConn struct {
	net.Conn
	name string
	port int
}

type forwardAddr string

func (forwardAddr) Network() string  { return "orchard-port-forward" }
func (a forwardAddr) String() string { return string(a) }

func (f *forwardConn) RemoteAddr() net.Addr {
	return forwardAddr(net.JoinHostPort(AddressPrefix+f.name, strconv.Itoa(f.port)))
}

// Read maps the WebSocket's close to io.EOF, as a TCP stream ends.
func (f *forwardConn) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && websocket.CloseStatus(err) != -1 {
		err = io.EOF
	}
	return n, err
}

// AddressPrefix starts the addresses Backend.Address returns: the guest's
// SSH is reached as "orchard-vm:<name>" through Backend.Dial, never by IP.
const AddressPrefix = "orchard-vm:"

// ParseAddress splits a dial address "[orchard-vm:<name>]:<port>" (what
// sshexec makes of Address's host and ssh.port).
func ParseAddress(addr string) (name string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("orchard: dial address %q: %w", addr, err)
	}
	name, ok := strings.CutPrefix(host, AddressPrefix)
	if !ok || name == "" {
		return "", 0, fmt.Errorf("orchard: dial address %q is not %s<vm>", addr, AddressPrefix)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("orchard: dial address %q has no valid port", addr)
	}
	return name, port, nil
}

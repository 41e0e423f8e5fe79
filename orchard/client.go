package orchard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the client's bounds.
const (
	DefaultRequestTimeout = 30 * time.Second
	dialTimeout           = 10 * time.Second
	maxBody               = 16 << 20 // a list of many VMs
	maxErrorBody          = 4 << 10
)

// DefaultServerName is the only name in the controller's default
// self-signed certificate.
const DefaultServerName = "orchard-controller"

// Options configure a Client.
type Options struct {
	// URL is the controller: https://HOST:6120, optionally with the
	// controller's --api-prefix as a path.
	URL string
	// ServiceAccount and Token authenticate (HTTP Basic). BootstrapToken
	// carries both, and the controller's certificate, in one string;
	// set one or the other.
	ServiceAccount string
	Token          string
	BootstrapToken string
	// CACert (PEM) or CAFile is the controller's certificate, trusted as the
	// only root; CACert wins. Without either, the bootstrap token's
	// certificate, else the system roots.
	CACert []byte
	CAFile string
	// ServerName is the name the certificate must carry; default: the first
	// DNS name of the pinned certificate (orchard-controller for the
	// controller's own), else the URL's host.
	ServerName string
	// UserAgent identifies Tarty; never "Orchard/0…" (the controller takes
	// such PUTs for a worker's). Default "tarty".
	UserAgent string
	// RequestTimeout bounds each request but watches and port-forwards.
	RequestTimeout time.Duration
	Logger         zerolog.Logger
}

// Client speaks the Orchard controller's REST API. It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	user, pw  string
	ua        string
	timeout   time.Duration
	tlsConfig *tls.Config
	http      *http.Client // no client timeout: each call bounds its own context
	log       zerolog.Logger
}

// NewClient checks o and builds a Client. It does not contact the controller.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(o.URL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("orchard: controller URL %q is not http(s)://HOST:PORT", o.URL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, user: o.ServiceAccount, pw: o.Token, ua: o.UserAgent, timeout: o.RequestTimeout,
		log: o.Logger.With().Str("component", "orchard").Logger()}
	cert := o.CACert
	if o.BootstrapToken != "" {
		if o.ServiceAccount != "" || o.Token != "" {
			return nil, errors.New("orchard: set a bootstrap token or a service account and token, not both")
		}
		bt, err := ParseBootstrapToken(o.BootstrapToken)
		if err != nil {
			return nil, err
		}
		c.user, c.pw = bt.ServiceAccount, bt.Token
		if len(cert) == 0 && o.CAFile == "" {
			cert = bt.Certificate
		}
	}
	if c.user == "" || c.pw == "" {
		return nil, errors.New("orchard: a service account and its token (or a bootstrap token) are required")
	}
	if len(cert) == 0 && o.CAFile != "" {
		if cert, err = os.ReadFile(o.CAFile); err != nil {
			return nil, fmt.Errorf("orchard: controller certificate: %w", err)
		}
	}
	if c.ua == "" {
		c.ua = "tarty"
	}
	if strings.HasPrefix(c.ua, "Orchard/") {
		return nil, errors.New("orchard: the User-Agent must not start with Orchard/ (the controller would take requests for a worker's)")
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if u.Scheme == "https" {
		if c.tlsConfig, err = tlsConfig(cert, o.ServerName, u.Hostname()); err != nil {
			return nil, err
		}
	}
	c.http = &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       c.tlsConfig,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: 2 * time.Minute, // a port-forward's wait comes before its headers
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     false, // the port-forward upgrade needs HTTP/1.1
	}}
	return c, nil
}

// tlsConfig pins cert (PEM, possibly several) as the only roots. The
// controller's default certificate names only orchard-controller while it is
// dialled by address, so the chain is verified against that name.
func tlsConfig(certPEM []byte, serverName, host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(certPEM) == 0 {
		cfg.ServerName = firstNonEmpty(serverName, host)
		return cfg, nil
	}
	pool := x509.NewCertPool()
	var first *x509.Certificate
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("orchard: controller certificate: %w", err)
		}
		pool.AddCert(crt)
		if first == nil {
			first = crt
		}
	}
	if first == nil {
		return nil, errors.New("orchard: the controller certificate holds no PEM CERTIFICATE block")
	}
	cfg.RootCAs = pool
	name := serverName
	if name == "" && len(first.DNSNames) > 0 {
		name = first.DNSNames[0]
	}
	cfg.ServerName = firstNonEmpty(name, host)
	return cfg, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// ServiceAccount is the account the client authenticates as.
func (c *Client) ServiceAccount() string { return c.user }

// URL is the controller's base URL.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return &u
}

func (c *Client) header(h http.Header) {
	h.Set("User-Agent", c.ua)
	h.Set("Accept", "application/json")
	req := http.Request{Header: h}
	req.SetBasicAuth(c.user, c.pw)
}

// do sends one request bounded by the request timeout and decodes a 2xx
// JSON answer into out (nil: the body is discarded).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("orchard %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx response (whose body the caller
// closes) or the classified error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q).String(), body)
	if err != nil {
		return nil, err
	}
	c.header(req.Header)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("orchard %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, classify(method, path, resp.StatusCode, readMessage(resp.Body))
}

// readMessage returns the controller's {"message":…}, else the start of the body.
func readMessage(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		return m.Message
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

// Info is GET /v1/controller/info: any valid account may read it.
func (c *Client) Info(ctx context.Context) (ControllerInfo, error) {
	var out ControllerInfo
	return out, c.do(ctx, http.MethodGet, "/v1/controller/info", nil, nil, &out)
}

// CreateVM is POST /v1/vms; it returns the VM as the controller stored it.
// A duplicate name is ErrConflict.
func (c *Client) CreateVM(ctx context.Context, vm VM) (VM, error) {
	var out VM
	return out, c.do(ctx, http.MethodPost, "/v1/vms", nil, vm, &out)
}

// GetVM is GET /v1/vms/{name}; a missing VM is ErrNotFound.
func (c *Client) GetVM(ctx context.Context, name string) (VM, error) {
	var out VM
	return out, c.do(ctx, http.MethodGet, "/v1/vms/"+url.PathEscape(name), nil, nil, &out)
}

// ListVMs is GET /v1/vms: every VM of the cluster.
func (c *Client) ListVMs(ctx context.Context) ([]VM, error) {
	var out []VM
	return out, c.do(ctx, http.MethodGet, "/v1/vms", nil, nil, &out)
}

// DeleteVM is DELETE /v1/vms/{name}: the controller drops the VM at once and
// its worker stops it and deletes the clone within seconds. A missing VM is
// ErrNotFound.
func (c *Client) DeleteVM(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(name), nil, nil, nil)
}

// ListWorkers is GET /v1/workers.
func (c *Client) ListWorkers(ctx context.Context) ([]Worker, error) {
	var out []Worker
	return out, c.do(ctx, http.MethodGet, "/v1/workers", nil, nil, &out)
}

// Watch is a per-VM watch stream. Close it when done.
type Watch struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	path string
}

// WatchVM is GET /v1/vms/{name}?watch=true: newline-delimited events, the
// VM's current state first. It has no timeout but ctx's. A missing VM makes
// the controller hang before its headers, so look the VM up first.
func (c *Client) WatchVM(ctx context.Context, name string) (*Watch, error) {
	path := "/v1/vms/" + url.PathEscape(name)
	resp, err := c.send(ctx, http.MethodGet, path, url.Values{"watch": {"true"}}, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &Watch{body: resp.Body, sc: sc, path: path}, nil
}

// Next returns the next event; io.EOF when the controller ended the stream.
func (w *Watch) Next() (WatchEvent, error) {
	for w.sc.Scan() {
		line := bytes.TrimSpace(w.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev WatchEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return WatchEvent{}, fmt.Errorf("orchard watch %s: %w", w.path, err)
		}
		return ev, nil
	}
	if err := w.sc.Err(); err != nil {
		return WatchEvent{}, err
	}
	return WatchEvent{}, io.EOF
}

// Close ends the watch.
func (w *Watch) Close() error { return w.body.Close() }

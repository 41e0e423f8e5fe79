// Package fakeorchard is an in-process Orchard controller for tests: an
// httptest TLS server (a self-signed certificate whose only name is
// orchard-controller, as the real controller's default) that answers the REST
// API the way reference/orchard.md describes it: HTTP Basic auth with roles
// (a missing role is 401, not 403), the exact status codes and empty bodies,
// first-in first-out placement by resources and labels on online, unpaused
// workers (offline judged from last_seen on an injectable clock), statuses
// pending → running → failed with the controller's messages, per-VM watches,
// and a port-forward WebSocket to a local TCP listener (such as
// internal/sshdtest's sshd). Failures are injected with methods: a failed
// pull or clone, a guest that powers off, a worker lost or restarted.
//
// Production code never imports it.
package fakeorchard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/tartyci/tarty/orchard"
)

// Roles (pkg/resource/v1/service_account_role.go).
const (
	RoleComputeRead    = "compute:read"
	RoleComputeWrite   = "compute:write"
	RoleComputeConnect = "compute:connect"
	RoleAdminRead      = "admin:read"
	RoleAdminWrite     = "admin:write"
)

// Messages the controller and its workers set (reference/orchard.md section 2).
const (
	MsgPulling     = "pulling VM image..."
	MsgCloning     = "cloning VM..."
	MsgConfiguring = "configuring VM..."
	MsgStarted     = "VM started"
	MsgGuestExited = "VM failed: VM exited unexpectedly"
	MsgLostTrack   = "Worker lost track of VM"
	MsgLostConn    = "VM is assigned to a worker that lost connection with the controller"
	MsgWorkerGone  = "VM is assigned to a worker that doesn't exist anymore"
)

// Config tunes the fake. Zero values take the defaults.
type Config struct {
	// Now is the clock placement, delays and worker liveness are judged by;
	// time.Now when nil.
	Now func() time.Time
	// PrepareTime is how long a placed VM stays pending (pulling, cloning,
	// configuring) before it runs; default 50 ms.
	PrepareTime time.Duration
	// OfflineTimeout is the controller's --worker-offline-timeout; default 3 min.
	OfflineTimeout time.Duration
	// Tick is how often the fake's own loop advances the world in real time
	// (besides on every request); default 5 ms.
	Tick time.Duration
	// Forward is where a port-forward to port of VM name connects (a local
	// TCP address). When nil, port-forwards answer 500 as a guest whose port
	// keeps refusing.
	Forward func(vm string, port int) string
	// PowerOffDir, when set, is watched: a file named after a running VM
	// makes its guest power off (the VM fails "VM exited unexpectedly"), and
	// the file is removed. A guest's shutdown command can touch it.
	PowerOffDir string
	// DistributeLoad places on the least busy worker first; the default,
	// like the controller's, is optimize-utilization (busiest first).
	DistributeLoad bool
}

type account struct {
	token string
	roles map[string]bool
}

type worker struct {
	w     orchard.Worker
	alive bool // heartbeating: last_seen follows the clock
	lost  bool // its VMs were failed for the lost connection
}

type vm struct {
	v        orchard.VM
	seq      int64
	version  int64
	placedAt time.Time
	failAt   time.Time // OnFailure restart bookkeeping
	created  time.Time
	conns    map[net.Conn]bool // open port-forwards
}

// Server is a running fake controller.
type Server struct {
	cfg     Config
	srv     *httptest.Server
	certPEM []byte

	mu        sync.Mutex
	accounts  map[string]account
	workers   map[string]*worker
	vms       map[string]*vm
	seq       int64
	changed   chan struct{} // closed and replaced on every change
	failures  map[string]string
	creates   [][]byte // raw create bodies, for tests that look for secrets
	stats     Stats
	perWorker map[string]int // VMs holding a slot now, per worker
	hold      bool           // the controller's scheduler places nothing

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Stats are what the fake observed.
type Stats struct {
	Created       int
	Placed        int
	Deleted       int
	Requests      int
	MaxPerWorker  int           // most VMs holding a slot on one worker at once
	MaxUnplaced   time.Duration // longest a VM waited for a worker (by the clock)
	NeverPlaced   int           // VMs deleted while still unplaced
	PortForwards  int
	AuthFailures  int
	ExitedGuests  int
	FailedByFault int
}

// New starts a fake controller.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PrepareTime <= 0 {
		cfg.PrepareTime = 50 * time.Millisecond
	}
	if cfg.OfflineTimeout <= 0 {
		cfg.OfflineTimeout = orchard.OfflineAfter
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 5 * time.Millisecond
	}
	s := &Server{cfg: cfg, accounts: map[string]account{}, workers: map[string]*worker{}, vms: map[string]*vm{},
		changed: make(chan struct{}), failures: map[string]string{}, perWorker: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	cert, certPEM := selfSigned()
	s.certPEM = certPEM
	s.srv = httptest.NewUnstartedServer(s.routes())
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests want
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	go s.loop()
	return s
}

// selfSigned makes an ECDSA certificate whose only name is orchard-controller.
func selfSigned() (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: orchard.DefaultServerName},
		DNSNames:     []string{orchard.DefaultServerName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	return c, certPEM
}

// URL is the controller's address, by IP (the certificate does not name it).
func (s *Server) URL() string { return s.srv.URL }

// CertPEM is the controller's certificate, for orchard.ca_file.
func (s *Server) CertPEM() []byte { return s.certPEM }

// WriteCert writes the certificate to dir/orchard-ca.pem and returns the path.
func (s *Server) WriteCert(dir string) (string, error) {
	p := filepath.Join(dir, "orchard-ca.pem")
	return p, os.WriteFile(p, s.certPEM, 0o600)
}

// Close stops the server and every port-forward.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		for _, v := range s.vms {
			for c := range v.conns {
				c.Close()
			}
		}
		s.mu.Unlock()
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// AddAccount adds a service account with roles.
func (s *Server) AddAccount(name, token string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := account{token: token, roles: map[string]bool{}}
	for _, r := range roles {
		a.roles[r] = true
	}
	s.accounts[name] = a
}

// WorkerOptions describe a worker. Zero Slots means 2 (the workers' default
// org.cirruslabs.tart-vms).
type WorkerOptions struct {
	Slots  int
	Labels map[string]string
	Paused bool
}

// AddWorker registers a heartbeating worker.
func (s *Server) AddWorker(name string, o WorkerOptions) {
	if o.Slots == 0 {
		o.Slots = 2
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers[name] = &worker{alive: true, w: orchard.Worker{Name: name, LastSeen: now, CreatedAt: &now,
		MachineID: "machine-" + name, SchedulingPaused: o.Paused, Labels: copyLabels(o.Labels),
		Resources: map[string]uint64{orchard.ResourceTartVMs: uint64(o.Slots), "org.cirruslabs.logical-cores": 8,
			"org.cirruslabs.memory-mib": 16384},
		DefaultCPU: 4, DefaultMemory: 8192, Arch: "arm64", Runtime: "tart"}}
	s.notifyLocked()
}

func copyLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetPaused pauses or resumes scheduling on a worker.
func (s *Server) SetPaused(name string, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[name]; w != nil {
		w.w.SchedulingPaused = paused
		s.notifyLocked()
	}
}

// StopHeartbeat makes a worker silent: it goes offline once its last_seen
// is older than the offline timeout by the clock, and its VMs then fail.
func (s *Server) StopHeartbeat(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[name]; w != nil {
		w.alive = false
	}
}

// LoseWorker is a worker whose connection was lost long enough ago: it is
// offline now and its VMs fail "…worker that lost connection with the
// controller".
func (s *Server) LoseWorker(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[name]; w != nil {
		w.alive = false
		w.w.LastSeen = s.cfg.Now().Add(-s.cfg.OfflineTimeout - time.Second)
		s.advanceLocked(s.cfg.Now())
	}
}

// Heartbeat brings a silent or lost worker back.
func (s *Server) Heartbeat(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[name]; w != nil {
		w.alive, w.lost = true, false
		w.w.LastSeen = s.cfg.Now()
		s.notifyLocked()
	}
}

// RestartWorker is a worker that restarted: its VMs fail "Worker lost track of VM".
func (s *Server) RestartWorker(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vms {
		if v.v.Worker == name && !v.v.Terminal() {
			s.failLocked(v, MsgLostTrack)
		}
	}
	s.notifyLocked()
}

// DeleteWorker drops a worker's record: its VMs fail.
func (s *Server) DeleteWorker(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, name)
	for _, v := range s.vms {
		if v.v.Worker == name && !v.v.Terminal() {
			s.failLocked(v, MsgWorkerGone)
		}
	}
	s.notifyLocked()
}

// FailImage makes every VM of image fail when its worker prepares it, with
// message (for example "failed to pull/clone the VM: …"); "" clears it.
func (s *Server) FailImage(image, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if message == "" {
		delete(s.failures, image)
	} else {
		s.failures[image] = message
	}
}

// HoldPlacement stops (or restarts) the controller's scheduler: created VMs
// stay pending with no worker, as one that fits nowhere does.
func (s *Server) HoldPlacement(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = on
	s.notifyLocked()
}

// GuestExit powers VM name's guest off: it fails "VM exited unexpectedly".
func (s *Server) GuestExit(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[name]
	if v == nil || v.v.Status != orchard.StatusRunning {
		return false
	}
	s.stats.ExitedGuests++
	s.failLocked(v, MsgGuestExited)
	s.notifyLocked()
	return true
}

// VM returns VM name as the controller stores it.
func (s *Server) VM(name string) (orchard.VM, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[name]
	if v == nil {
		return orchard.VM{}, false
	}
	return v.v, true
}

// VMs returns every VM, oldest first.
func (s *Server) VMs() []orchard.VM {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

// Workers returns every worker, by name.
func (s *Server) Workers() []orchard.Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workersLocked()
}

// CreateRequests returns the raw bodies of every POST /v1/vms.
func (s *Server) CreateRequests() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.creates...)
}

// Stats returns what the fake observed so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) listLocked() []orchard.VM {
	vs := make([]*vm, 0, len(s.vms))
	for _, v := range s.vms {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(a, b int) bool { return vs[a].seq < vs[b].seq })
	out := make([]orchard.VM, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.v)
	}
	return out
}

func (s *Server) workersLocked() []orchard.Worker {
	out := make([]orchard.Worker, 0, len(s.workers))
	for _, w := range s.workers {
		out = append(out, w.w)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// loop advances the world in real time.
func (s *Server) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.powerOffs()
		s.mu.Lock()
		s.advanceLocked(s.cfg.Now())
		s.mu.Unlock()
	}
}

// powerOffs applies the files in PowerOffDir.
func (s *Server) powerOffs() {
	if s.cfg.PowerOffDir == "" {
		return
	}
	entries, err := os.ReadDir(s.cfg.PowerOffDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if s.GuestExit(e.Name()) {
			_ = os.Remove(filepath.Join(s.cfg.PowerOffDir, e.Name()))
		}
	}
}

// advanceLocked moves time forward: heartbeats, offline workers, restarts,
// placement and preparation.
func (s *Server) advanceLocked(now time.Time) {
	changed := false
	for name, w := range s.workers {
		if w.alive {
			if now.Sub(w.w.LastSeen) >= 15*time.Second || now.Before(w.w.LastSeen) {
				w.w.LastSeen = now
			}
			continue
		}
		if !w.lost && now.Sub(w.w.LastSeen) > s.cfg.OfflineTimeout {
			w.lost = true
			for _, v := range s.vms {
				if v.v.Worker == name && !v.v.Terminal() {
					s.failLocked(v, MsgLostConn)
				}
			}
			changed = true
		}
	}
	for _, v := range s.vms {
		if v.v.Status == orchard.StatusFailed && v.v.RestartPolicy == orchard.RestartOnFailure && now.Sub(v.failAt) >= 15*time.Second {
			v.v.Status, v.v.StatusMessage, v.v.Worker = orchard.StatusPending, "", ""
			v.v.RestartCount++
			v.version++
			changed = true
		}
	}
	if s.placeLocked(now) {
		changed = true
	}
	for _, v := range s.vms {
		if v.v.Status != orchard.StatusPending || !v.v.Placed() {
			continue
		}
		if now.Sub(v.placedAt) < s.cfg.PrepareTime {
			if v.v.StatusMessage == MsgCloning && now.Sub(v.placedAt) >= s.cfg.PrepareTime/2 {
				v.v.StatusMessage = MsgConfiguring
				v.version++
				changed = true
			}
			continue
		}
		if msg, ok := s.failures[v.v.Image]; ok {
			s.stats.FailedByFault++
			s.failLocked(v, msg)
		} else {
			v.v.Status, v.v.StatusMessage = orchard.StatusRunning, MsgStarted
			t := now
			v.v.StartedAt = &t
			v.version++
		}
		changed = true
	}
	if changed {
		s.notifyLocked()
	}
}

func (s *Server) online(w *worker, now time.Time) bool {
	return now.Sub(w.w.LastSeen) <= s.cfg.OfflineTimeout
}

// placeLocked is the controller's scheduler pass: pending VMs without a
// worker, first-in first-out, each on a qualifying worker.
func (s *Server) placeLocked(now time.Time) bool {
	if s.hold {
		return false
	}
	var pending []*vm
	for _, v := range s.vms {
		if v.v.Status == orchard.StatusPending && !v.v.Placed() {
			pending = append(pending, v)
		}
	}
	if len(pending) == 0 {
		return false
	}
	sort.Slice(pending, func(a, b int) bool { return pending[a].seq < pending[b].seq })
	used := s.usedLocked()
	placed := false
	for _, v := range pending {
		var best *worker
		for _, w := range s.workers {
			if !s.online(w, now) || w.w.SchedulingPaused || !w.w.HasLabels(v.v.Labels) || !fits(w, used[w.w.Name], v.v.Resources) {
				continue
			}
			if best == nil || s.better(w, best, used) {
				best = w
			}
		}
		if best == nil {
			continue
		}
		v.v.Worker, v.placedAt = best.w.Name, now
		t := now
		v.v.ScheduledAt = &t
		v.v.StatusMessage = MsgCloning
		v.version++
		if u := used[best.w.Name]; u == nil {
			used[best.w.Name] = map[string]uint64{}
		}
		for k, n := range v.v.Resources {
			used[best.w.Name][k] += n
		}
		s.stats.Placed++
		if d := now.Sub(v.created); d > s.stats.MaxUnplaced {
			s.stats.MaxUnplaced = d
		}
		placed = true
	}
	s.countLocked()
	return placed
}

// better orders candidate workers: the busiest first (optimize-utilization)
// or the least busy (distribute-load), then by name.
func (s *Server) better(a, b *worker, used map[string]map[string]uint64) bool {
	ua, ub := used[a.w.Name][orchard.ResourceTartVMs], used[b.w.Name][orchard.ResourceTartVMs]
	if ua != ub {
		if s.cfg.DistributeLoad {
			return ua < ub
		}
		return ua > ub
	}
	return a.w.Name < b.w.Name
}

func fits(w *worker, used map[string]uint64, want map[string]uint64) bool {
	for k, n := range want {
		if w.w.Resources[k] < used[k]+n {
			return false
		}
	}
	return true
}

// usedLocked sums the resources of the VMs holding a slot (placed, not failed).
func (s *Server) usedLocked() map[string]map[string]uint64 {
	used := map[string]map[string]uint64{}
	for _, v := range s.vms {
		if !v.v.Placed() || v.v.Terminal() {
			continue
		}
		if used[v.v.Worker] == nil {
			used[v.v.Worker] = map[string]uint64{}
		}
		for k, n := range v.v.Resources {
			used[v.v.Worker][k] += n
		}
	}
	return used
}

// countLocked records the most VMs holding a slot on one worker.
func (s *Server) countLocked() {
	for name := range s.perWorker {
		s.perWorker[name] = 0
	}
	for _, v := range s.vms {
		if v.v.Placed() && !v.v.Terminal() {
			s.perWorker[v.v.Worker]++
			if n := s.perWorker[v.v.Worker]; n > s.stats.MaxPerWorker {
				s.stats.MaxPerWorker = n
			}
		}
	}
}

// failLocked fails v with message and closes its port-forwards.
func (s *Server) failLocked(v *vm, message string) {
	v.v.Status, v.v.StatusMessage = orchard.StatusFailed, message
	v.failAt = s.cfg.Now()
	v.version++
	for c := range v.conns {
		c.Close()
	}
}

func (s *Server) authorizedLocked(r *http.Request, roles ...string) (status int, message string) {
	user, pw, ok := r.BasicAuth()
	a, known := s.accounts[user]
	if !ok || !known || a.token != pw {
		s.stats.AuthFailures++
		return http.StatusUnauthorized, ""
	}
	var missing []string
	for _, role := range roles {
		if !a.roles[role] {
			missing = append(missing, role)
		}
	}
	if len(missing) > 0 {
		msg := "all of the following roles must be present: "
		for i, m := range missing {
			if i > 0 {
				msg += ", "
			}
			msg += m
		}
		return http.StatusUnauthorized, msg
	}
	return 0, ""
}

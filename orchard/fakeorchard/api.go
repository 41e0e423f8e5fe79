package fakeorchard

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/tartyci/tarty/orchard"
)

// nameRE is what the controller accepts as a VM name today.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/{$}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v1/controller/info", s.auth(nil, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, orchard.ControllerInfo{Version: "0.55.0-fake", Commit: "fake",
			Capabilities: []string{"vm-watch", "port-forward"}})
	}))
	read, write := []string{RoleComputeRead}, []string{RoleComputeWrite}
	mux.HandleFunc("GET /v1/vms", s.auth(read, s.listVMs))
	mux.HandleFunc("POST /v1/vms", s.auth(write, s.createVM))
	mux.HandleFunc("GET /v1/vms/{name}", s.auth(read, s.getVM))
	mux.HandleFunc("DELETE /v1/vms/{name}", s.auth(write, s.deleteVM))
	mux.HandleFunc("GET /v1/vms/{name}/events", s.auth(read, s.vmEvents))
	mux.HandleFunc("GET /v1/vms/{name}/ip", s.auth(nil, s.vmIP))
	mux.HandleFunc("GET /v1/vms/{name}/port-forward", s.auth(nil, s.portForward))
	mux.HandleFunc("GET /v1/workers", s.auth(read, s.listWorkers))
	mux.HandleFunc("GET /v1/workers/{name}", s.auth(read, s.getWorker))
	mux.HandleFunc("DELETE /v1/workers/{name}", s.auth(write, s.deleteWorker))
	mux.HandleFunc("PUT /v1/workers/{name}", s.auth(write, s.putWorker))
	mux.HandleFunc("POST /v1/workers", s.auth(write, s.postWorker))
	return mux
}

// auth checks Basic credentials and roles; roles nil means any account. The
// connect endpoints (ip, port-forward) take compute:connect or compute:write.
func (s *Server) auth(roles []string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Requests++
		status, msg := s.authorizedLocked(r, roles...)
		if status == 0 && roles == nil && (strings.HasSuffix(r.URL.Path, "/port-forward") || strings.HasSuffix(r.URL.Path, "/ip")) {
			if st, _ := s.authorizedLocked(r, RoleComputeWrite); st != 0 {
				status, msg = s.authorizedLocked(r, RoleComputeConnect)
			}
		}
		s.advanceLocked(s.cfg.Now())
		s.mu.Unlock()
		if status != 0 {
			writeMessage(w, status, msg)
			return
		}
		h(w, r)
	}
}

// writeMessage answers {"message":…}, or an empty body when msg is "".
func writeMessage(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	list := s.listLocked()
	s.mu.Unlock()
	if f := r.URL.Query().Get("filter"); f != "" {
		worker, ok := strings.CutPrefix(f, "worker=")
		var out []orchard.VM
		for _, v := range list {
			if ok && v.Worker == worker {
				out = append(out, v)
			}
		}
		list = out
	}
	if list == nil {
		list = []orchard.VM{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createVM(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var in orchard.VM
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil || !oneOf(in.OS, "", "darwin", "linux") || !oneOf(in.Arch, "", "arm64", "amd64") || !oneOf(in.Runtime, "", "tart", "vetu") {
		writeMessage(w, http.StatusBadRequest, "invalid JSON was provided")
		return
	}
	switch {
	case in.Name == "" || !nameRE.MatchString(in.Name):
		writeMessage(w, http.StatusPreconditionFailed, "VM name is invalid")
		return
	case in.Image == "":
		writeMessage(w, http.StatusPreconditionFailed, "VM image cannot be empty")
		return
	case !oneOf(in.RestartPolicy, "", orchard.RestartNever, orchard.RestartOnFailure):
		writeMessage(w, http.StatusPreconditionFailed, "unsupported restart policy")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = append(s.creates, body)
	if _, dup := s.vms[in.Name]; dup {
		writeMessage(w, http.StatusConflict, "VM with this name already exists")
		return
	}
	if in.OS == "" {
		in.OS = "darwin"
	}
	if in.Arch == "" {
		in.Arch = "arm64"
	}
	if in.Runtime == "" {
		in.Runtime = "tart"
	}
	if in.RestartPolicy == "" {
		in.RestartPolicy = orchard.RestartNever
	}
	if in.Resources == nil {
		in.Resources = map[string]uint64{}
	}
	if _, ok := in.Resources[orchard.ResourceTartVMs]; !ok && in.OS == "darwin" {
		in.Resources[orchard.ResourceTartVMs] = 1
	}
	s.seq++
	in.Status = orchard.StatusPending
	in.UID = "uid-" + strconv.FormatInt(s.seq, 10)
	t := now
	in.CreatedAt = &t
	v := &vm{v: in, seq: s.seq, created: now, conns: map[net.Conn]bool{}}
	s.vms[in.Name] = v
	s.stats.Created++
	s.advanceLocked(now) // the controller schedules right after each create
	s.notifyLocked()
	writeJSON(w, http.StatusOK, v.v)
}

func oneOf(s string, values ...string) bool {
	for _, v := range values {
		if s == v {
			return true
		}
	}
	return false
}

func (s *Server) getVM(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if r.URL.Query().Get("watch") == "true" {
		s.watch(w, r, name)
		return
	}
	s.mu.Lock()
	v := s.vms[name]
	var out orchard.VM
	if v != nil {
		out = v.v
	}
	s.mu.Unlock()
	if v == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// watch streams NDJSON events of one VM, its current state first. A missing
// VM hangs without headers, as the controller's does.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, name string) {
	flusher, _ := w.(http.Flusher)
	var last int64 = -1
	var lastVM orchard.VM
	first := true
	for {
		s.mu.Lock()
		v := s.vms[name]
		changed := s.changed
		var cur orchard.VM
		var version int64
		if v != nil {
			cur, version = v.v, v.version
		}
		s.mu.Unlock()
		switch {
		case v == nil && first:
			// hang: headers only come with the first line
		case v == nil:
			writeLine(w, flusher, "DELETED", lastVM)
			return
		case first:
			w.Header().Set("Content-Type", "application/x-ndjson")
			writeLine(w, flusher, "ADDED", cur)
			first, last, lastVM = false, version, cur
		case version != last:
			writeLine(w, flusher, "MODIFIED", cur)
			last, lastVM = version, cur
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		case <-changed:
		}
	}
}

func writeLine(w http.ResponseWriter, f http.Flusher, typ string, v orchard.VM) {
	b, _ := json.Marshal(orchard.WatchEvent{Type: typ, Object: v})
	_, _ = w.Write(append(b, '\n'))
	if f != nil {
		f.Flush()
	}
}

func (s *Server) deleteVM(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	v := s.vms[name]
	if v != nil {
		delete(s.vms, name)
		s.stats.Deleted++
		if !v.v.Placed() {
			s.stats.NeverPlaced++
		}
		for c := range v.conns {
			c.Close()
		}
		s.notifyLocked()
	}
	s.mu.Unlock()
	if v == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) vmEvents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, ok := s.vms[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, []any{})
}

func (s *Server) vmIP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v, ok := s.vms[r.PathValue("name")]
	running := ok && v.v.Status == orchard.StatusRunning
	s.mu.Unlock()
	switch {
	case !ok:
		w.WriteHeader(http.StatusNotFound)
	case !running:
		writeMessage(w, http.StatusRequestTimeout, "VM is not running")
	default:
		writeJSON(w, http.StatusOK, map[string]string{"ip": "192.168.64.2"})
	}
}

// portForward follows the controller: 400/404 empty, 417 for a failed VM,
// 408 when it is not running on its worker within wait, 503 (empty) when its
// worker is disconnected, 500 (empty) when the guest's port kept refusing.
func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	wait := 10 * time.Second
	if q := r.URL.Query().Get("wait"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		wait = time.Duration(n) * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		v := s.vms[name]
		var cur orchard.VM
		var wk *worker
		if v != nil {
			cur = v.v
			wk = s.workers[cur.Worker]
		}
		changed := s.changed
		now := s.cfg.Now()
		s.mu.Unlock()
		switch {
		case v == nil:
			w.WriteHeader(http.StatusNotFound)
			return
		case cur.Terminal():
			writeMessage(w, http.StatusExpectationFailed, "VM is in a terminal state '"+cur.Status+"'")
			return
		case cur.Placed() && (wk == nil || !s.online(wk, now) || !wk.alive):
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case cur.Status == orchard.StatusRunning:
			s.forward(w, r, name, port, deadline)
			return
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
			writeMessage(w, http.StatusRequestTimeout, "VM is not running on '"+cur.Worker+"' worker")
			return
		}
	}
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, name string, port int, deadline time.Time) {
	if s.cfg.Forward == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	target := s.cfg.Forward(name, port)
	var guest net.Conn
	for {
		var err error
		var d net.Dialer
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		guest, err = d.DialContext(ctx, "tcp", target)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		guest.Close()
		return
	}
	client := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	s.mu.Lock()
	v := s.vms[name]
	if v == nil || v.v.Terminal() {
		s.mu.Unlock()
		guest.Close()
		client.Close()
		return
	}
	v.conns[client] = true
	v.conns[guest] = true
	s.stats.PortForwards++
	s.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(guest, client); closeWrite(guest); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, guest); client.Close(); done <- struct{}{} }()
	<-done
	<-done
	guest.Close()
	client.Close()
	s.mu.Lock()
	if v := s.vms[name]; v != nil {
		delete(v.conns, client)
		delete(v.conns, guest)
	}
	s.mu.Unlock()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	list := s.workersLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getWorker(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	wk := s.workers[r.PathValue("name")]
	var out orchard.Worker
	if wk != nil {
		out = wk.w
	}
	s.mu.Unlock()
	if wk == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteWorker(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	_, ok := s.workers[name]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s.DeleteWorker(name)
	w.WriteHeader(http.StatusOK)
}

// putWorker updates scheduling_paused and last_seen.
func (s *Server) putWorker(w http.ResponseWriter, r *http.Request) {
	var in orchard.Worker
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		writeMessage(w, http.StatusBadRequest, "invalid JSON was provided")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wk := s.workers[r.PathValue("name")]
	if wk == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	wk.w.SchedulingPaused = in.SchedulingPaused
	if !in.LastSeen.IsZero() {
		wk.w.LastSeen = in.LastSeen
	}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, wk.w)
}

// postWorker registers a worker; a different machine_id under a known name is 409.
func (s *Server) postWorker(w http.ResponseWriter, r *http.Request) {
	var in orchard.Worker
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Name == "" {
		writeMessage(w, http.StatusBadRequest, "invalid JSON was provided")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.workers[in.Name]; old != nil && old.w.MachineID != in.MachineID {
		writeMessage(w, http.StatusConflict, "this worker is managed from a different machine ID")
		return
	}
	if in.Resources == nil {
		in.Resources = map[string]uint64{orchard.ResourceTartVMs: 2}
	}
	in.LastSeen = s.cfg.Now()
	s.workers[in.Name] = &worker{w: in, alive: true}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, in)
}

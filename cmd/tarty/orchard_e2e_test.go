package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tartyci/tarty/orchard/fakeorchard"
)

// TestOrchardEndToEnd runs `tarty run` with backend: orchard against the fake
// Orchard controller: the VM is created there (no secret in it), the guest is
// a real sshd reached only through the controller's port-forward WebSocket,
// the fake runner takes the job, and the guest's shutdown command powers the
// VM off (the controller marks it failed "VM exited unexpectedly"), which is
// the runner's normal end: the VM is deleted and the runner removed.
func TestOrchardEndToEnd(t *testing.T) {
	e := newE2EBase(t, "tarty-fleet")

	// The controller: two workers that carry pool=ci and one that does not;
	// every port-forward reaches the sshd, whatever the port.
	powerOff := filepath.Join(e.dir, "poweroff")
	if err := os.MkdirAll(powerOff, 0o700); err != nil {
		t.Fatal(err)
	}
	sshdAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.sshd.Port))
	fake := fakeorchard.New(fakeorchard.Config{PrepareTime: 500 * time.Millisecond, PowerOffDir: powerOff,
		Forward: func(string, int) string { return sshdAddr }})
	t.Cleanup(fake.Close)
	const orchardToken = "orchard-token-e2e-0123456789"
	fake.AddAccount("tarty", orchardToken, fakeorchard.RoleComputeRead, fakeorchard.RoleComputeWrite)
	fake.AddWorker("mac-1", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "ci"}})
	fake.AddWorker("mac-2", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "ci"}})
	fake.AddWorker("mac-gpu", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "gpu"}})
	caFile, err := fake.WriteCert(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(e.dir, "orchard-token")
	if err := os.WriteFile(tokenFile, []byte(orchardToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	e.writeConfig(fmt.Sprintf(`backend: orchard
orchard:
  url: %s
  service_account: tarty
  token_file: %s
  ca_file: %s
  worker_labels:
    pool: ci
github:
  url: %s
  organization: %s
  labels: [tarty]
images:
  runner: ghcr.io/acme/macos-runner:latest
ssh:
  user: %s
  port: 22
  key_file: %s
  connect_timeout: 30s
runners:
  max: 4
  name_prefix: %s
  boot_timeout: 60s
  work_dir: %s
  shutdown_command: touch '%s'/"$TARTY_RUNNER_NAME"
reconcile:
  interval: 10s
server:
  listen: 127.0.0.1:%d
  admin_listen: %s
log:
  level: debug
  format: json
state_dir: %s
`, fake.URL(), tokenFile, caFile, e.gh.URL(), e.gh.Organization(), e.sshd.User, e.sshd.ClientKey.Private, e.prefix,
		e.workDir, powerOff, e.hookPort, e.admin, filepath.Join(e.dir, "state")))
	if code, out := e.command("validate"); code != 0 {
		t.Fatalf("tarty validate = %d:\n%s", code, out)
	}

	d := e.start()
	e.serveOneJob(func() int { return len(fake.VMs()) })
	st := fake.Stats()
	if st.Created != 1 || st.PortForwards < 1 || st.ExitedGuests != 1 || st.NeverPlaced != 0 {
		t.Errorf("controller saw %+v: want one VM, reached by port-forward, whose guest powered off", st)
	}
	for _, body := range fake.CreateRequests() {
		var vm map[string]any
		if err := json.Unmarshal(body, &vm); err != nil {
			t.Fatal(err)
		}
		if _, ok := vm["startup_script"]; ok || strings.Contains(string(body), "jit") {
			t.Errorf("the VM carries a script or a JIT config: %s", body)
		}
		if l, _ := vm["labels"].(map[string]any); l["pool"] != "ci" || vm["headless"] != true {
			t.Errorf("create %s", body)
		}
	}

	code, out := e.command("status")
	if code != 0 || !strings.Contains(out, "Tarty: ready") || !strings.Contains(out, "WORKER") ||
		!strings.Contains(out, "mac-gpu") || !strings.Contains(out, "pool=ci") {
		t.Errorf("tarty status = %d:\n%s", code, out)
	}
	code, out = e.command("status", "--json")
	if code != 0 || !strings.Contains(out, `"workers"`) || !strings.Contains(out, `"free_slots"`) {
		t.Errorf("tarty status --json = %d:\n%s", code, out)
	}
	metrics := e.metrics()
	for _, m := range []string{"tarty_orchard_guest_exits_total 1", "tarty_orchard_vms_unplaced_total 0", "tarty_orchard_vms_lost_total 0"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	code, out = e.command("rebuild")
	if code == 0 || !strings.Contains(out, "registry") {
		t.Errorf("tarty rebuild with backend: orchard = %d:\n%s", code, out)
	}

	if code := e.stop(d); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	log := d.log.String()
	for _, secret := range []string{e.secret, e.gh.Token(), orchardToken} {
		if strings.Contains(log, secret) {
			t.Errorf("a secret appears in the log")
		}
	}
	if !strings.Contains(log, "Orchard controller found") {
		t.Errorf("the daemon did not check the controller at start")
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tartyci/tarty/orchard/fakeorchard"
)

// orchardDoctor is a doctor fixture with backend: orchard on a fake controller.
func orchardDoctor(t *testing.T, token string, setup func(f *fakeorchard.Server)) *doctorFixture {
	t.Helper()
	ctl := fakeorchard.New(fakeorchard.Config{})
	t.Cleanup(ctl.Close)
	ctl.AddAccount("tarty", "tarty-token-0123456789", fakeorchard.RoleComputeRead, fakeorchard.RoleComputeWrite)
	ctl.AddAccount("reader", "reader-token-0123456789", fakeorchard.RoleComputeRead)
	if setup != nil {
		setup(ctl)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, ctl.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	account := "tarty"
	if token == "reader-token-0123456789" {
		account = "reader"
	}
	extra := fmt.Sprintf("backend: orchard\norchard:\n  url: %s\n  service_account: %s\n  token: %s\n  ca_file: %s\n  worker_labels: {pool: ci}\n",
		ctl.URL(), account, token, ca)
	return newDoctorFixture(t, fixtureOpts{extra: extra})
}

func TestDoctorOrchard(t *testing.T) {
	ci := map[string]string{"pool": "ci"}
	t.Run("healthy fleet", func(t *testing.T) {
		f := orchardDoctor(t, "tarty-token-0123456789", func(c *fakeorchard.Server) {
			c.AddWorker("mini-1", fakeorchard.WorkerOptions{Labels: ci})
			c.AddWorker("mini-2", fakeorchard.WorkerOptions{Labels: ci})
		})
		expectCheck(t, f.run("orchard"), doctorPass, "answers", `"tarty"`)
		expectCheck(t, f.run("orchard-roles"), doctorPass, "compute:write")
		expectCheck(t, f.run("orchard-workers"), doctorPass, "2 worker(s)", "4 slots free", "pool=ci")
		expectCheck(t, f.run("tart"), doctorSkip, "orchard")
	})
	t.Run("wrong token", func(t *testing.T) {
		f := orchardDoctor(t, "wrong-token-0123456789", nil)
		expectCheck(t, f.run("orchard"), doctorFail, "refuses", "create service-account")
	})
	t.Run("read-only account", func(t *testing.T) {
		f := orchardDoctor(t, "reader-token-0123456789", func(c *fakeorchard.Server) {
			c.AddWorker("mini-1", fakeorchard.WorkerOptions{Labels: ci})
		})
		expectCheck(t, f.run("orchard"), doctorPass)
		expectCheck(t, f.run("orchard-roles"), doctorFail, "lacks compute:write", "--roles compute:write")
	})
	t.Run("no worker carries the labels", func(t *testing.T) {
		f := orchardDoctor(t, "tarty-token-0123456789", func(c *fakeorchard.Server) {
			c.AddWorker("mini-1", fakeorchard.WorkerOptions{Labels: map[string]string{"pool": "other"}})
		})
		expectCheck(t, f.run("orchard-workers"), doctorFail, "no online worker", "without orchard.worker_labels")
	})
	t.Run("a paused worker", func(t *testing.T) {
		f := orchardDoctor(t, "tarty-token-0123456789", func(c *fakeorchard.Server) {
			c.AddWorker("mini-1", fakeorchard.WorkerOptions{Labels: ci})
			c.AddWorker("mini-2", fakeorchard.WorkerOptions{Labels: ci, Paused: true})
		})
		expectCheck(t, f.run("orchard-workers"), doctorWarn, "mini-2", "paused")
	})
	t.Run("backend local skips them", func(t *testing.T) {
		f := newDoctorFixture(t, fixtureOpts{})
		expectCheck(t, f.run("orchard"), doctorSkip, "backend: local")
	})
}

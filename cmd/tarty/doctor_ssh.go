package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/sshexec"
	"github.com/tartyci/tarty/tartvm"
)

// errDoctorVMExited cancels the SSH check's steps when the throwaway VM stops.
var errDoctorVMExited = errors.New("the VM stopped")

// checkSSH does what a runner launch does up to the runner: clone the runner
// image to a throwaway VM, boot it, get its address, log in over SSH and
// check that run.sh is there. The VM is stopped and deleted whatever happens
// (interrupted too). It takes a slot of the two-VM budget, so it does not run
// when none is free, nor beside a daemon, which deletes VMs with its prefix
// that it did not start and would not count this one against the budget.
func checkSSH(ctx context.Context, e *doctorEnv) (res checkResult) {
	runner, prefix := e.cfg.Images.Runner, e.cfg.Runners.NamePrefix
	if up, _ := e.daemon(ctx); up {
		return checkWarn("stop the daemon (launchctl bootout gui/$(id -u)/com.tartyci.tarty), run tarty doctor, then start it again",
			"not run: a daemon answers on %s; it deletes VMs with its prefix that it did not start, and would launch into the slot this check takes",
			e.cfg.Server.AdminListen)
	}
	if e.guestErr != nil {
		return checkFail("check ssh.key_file, ssh.password and ssh.client", "cannot build the SSH client: %s", oneLineErr(e.guestErr))
	}
	if _, err := e.prepare(e.cfg.StateDir); err != nil {
		return checkFailErr(err, "check state_dir", "state_dir %s", e.cfg.StateDir)
	}

	capacity, err := e.backend.Capacity(ctx)
	if err != nil {
		return checkFailErr(err, "check that `tart list` works for this user", "reading the VM budget")
	}
	vms, err := e.backend.VMs(ctx, prefix+"-")
	if err != nil {
		return checkFailErr(err, "check that `tart list` works for this user", "listing Tarty's VMs")
	}
	var ours []string
	for _, vm := range vms {
		if vm.Running {
			ours = append(ours, vm.Name)
		}
	}
	if capacity.Slots-len(ours) <= 0 {
		return checkWarn("run tarty doctor again when one of them has stopped",
			"not run: no free VM slot (macOS runs at most %d macOS VMs; running: %s)",
			tartvm.DefaultHostLimit, runningVMsList(capacity.Foreign, ours))
	}

	// The whole launch is bounded like a runner's boot.
	bound := e.cfg.Runners.BootTimeout
	if bound <= 0 {
		bound = 5 * time.Minute
	}
	ctx, cancelBound := context.WithTimeout(ctx, bound)
	defer cancelBound()

	name := e.newName()
	began := time.Now()
	logPath := e.tart.LogPath(name)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cleanupTimeout)
		defer cancel()
		err := errors.Join(e.backend.Stop(cctx, name), e.backend.Delete(cctx, name))
		if err != nil {
			res.detail += fmt.Sprintf("; and VM %s could not be deleted: %s", name, oneLineErr(err))
			if res.status < doctorWarn {
				res.status = doctorWarn
			}
			if res.fix == "" {
				res.fix = fmt.Sprintf("tart stop %s; tart delete %s (the next tarty run deletes it too)", name, name)
			}
			return
		}
		if res.status >= doctorWarn {
			res.detail += "; tart run log: " + logPath
		} else {
			os.Remove(logPath)
		}
	}()

	if err := e.backend.Create(ctx, runner, name); err != nil {
		return checkFailErr(err, "check that `tart clone "+runner+" "+name+"` works for this user", "cloning %q to %s", runner, name)
	}
	exited, err := e.backend.Boot(ctx, name)
	if err != nil {
		return checkFailErr(err, "check that `tart run "+name+"` works for this user", "booting %s", name)
	}
	// From here on, the VM stopping ends the step that waits on it.
	vctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case err := <-exited:
			cause := errDoctorVMExited
			if err != nil {
				cause = fmt.Errorf("%w: %w", errDoctorVMExited, err)
			}
			stop(cause)
		case <-vctx.Done():
		}
	}()
	why := func(err error) error {
		if c := context.Cause(vctx); c != nil && errors.Is(c, errDoctorVMExited) {
			return c
		}
		return err
	}

	addr, err := e.backend.Address(vctx, name, bound)
	if err != nil {
		return checkFailErr(why(err), "if VMs get no address: "+tartvm.DHCPLeaseFix+", then sudo rm /var/db/dhcpd_leases",
			"no IP address for %s", name)
	}
	target := fmt.Sprintf("%s@%s:%d", e.cfg.SSH.User, addr, e.cfg.SSH.Port)
	if err := e.guest.WaitReady(vctx, runner, addr); err != nil {
		var hk *sshexec.HostKeyError
		if errors.As(err, &hk) {
			return checkFail("if you re-pulled or rebuilt "+runner+" by hand: tarty forget-host-key "+runner,
				"logging in to %s: %s", name, oneLineErr(err))
		}
		return checkFailErr(why(err), "enable Remote Login in the image and check ssh.user, ssh.key_file and ssh.password; "+
			"`no route to host` is macOS Local Network privacy: ssh.client: openssh (README Troubleshooting)", "logging in to %s", name)
	}
	check := scheduler.RunnerCheckCommand(e.cfg.Runners.WorkDir)
	if err := e.guest.Run(vctx, runner, addr, check, nil, nil, nil); err != nil {
		var exit *sshexec.ExitError
		if errors.As(err, &exit) {
			return checkFail("install the GitHub Actions runner in the image at runners.work_dir (cirruslabs base images have it in ~/actions-runner), or set runners.work_dir",
				"ssh %s works, but there is no executable %s/run.sh in image %q", target, e.cfg.Runners.WorkDir, runner)
		}
		return checkFailErr(why(err), "check the guest's sshd", "ssh %s: checking run.sh", target)
	}
	return checkPass("booted %s from %q, ssh %s works, %s/run.sh is there (%s); the VM is deleted",
		name, runner, target, e.cfg.Runners.WorkDir, time.Since(began).Round(time.Second))
}

func runningVMsList(foreign, ours []string) string {
	var parts []string
	if len(foreign) > 0 {
		parts = append(parts, "other macOS VMs "+strings.Join(foreign, ", "))
	}
	if len(ours) > 0 {
		parts = append(parts, "Tarty's "+strings.Join(ours, ", "))
	}
	if len(parts) == 0 {
		return "none, yet the budget is full"
	}
	return strings.Join(parts, "; ")
}

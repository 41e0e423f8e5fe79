package faketart

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

// pollEvery is how often a running fake VM looks for the power-off file.
const pollEvery = 50 * time.Millisecond

// defaultDieError is what a DieAfterMS fault reports when DieError is empty.
const defaultDieError = `Error Domain=VZErrorDomain Code=1 "The virtual machine stopped unexpectedly."`

// run "boots" the VM in tart's phases:
//
//  1. under the global lock: the MAC check and the VM set-up (LockDelayMS),
//     during which the VM does not look running and a SIGINT is lost;
//  2. the VM's fcntl lock is taken (now it looks running) and the global lock
//     released;
//  3. Virtualization.framework's start (StartDelayMS), at whose end come the
//     two-VM limit (exit 1) and a Fault.Fail start failure;
//  4. it holds the lock until SIGINT (tart stop), the guest powering off
//     (vms/<name>/poweroff appears) or a DieAfterMS fault, all of which exit 0.
func (t *tart) run(p parsed) int {
	switch {
	case p.has("graphics") && p.has("no-graphics"):
		return t.usage(cmdRun, usagef("--graphics and --no-graphics are mutually exclusive"))
	case p.has("vnc") && p.has("vnc-experimental"):
		return t.usage(cmdRun, usagef("--vnc and --vnc-experimental are mutually exclusive"))
	}
	nets := 0
	for _, f := range []string{"net-bridged", "net-softnet", "net-host"} {
		if p.has(f) {
			nets++
		}
	}
	if nets > 1 {
		return t.usage(cmdRun, usagef("--net-bridged, --net-softnet and --net-host are mutually exclusive"))
	}
	name := p.args[0]
	d, local := localDir(t.home, name)
	switch {
	case !local || !d.dirExists():
		// tart checks this in validate(), so ArgumentParser prints it: exit 1.
		return t.nsError("the specified VM %q does not exist", name)
	case !d.initialized():
		return t.nsError("%s", missingFiles)
	}

	// Before anything that makes the VM look running, so `stop` always finds a
	// handler for its SIGINT.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)

	f, err := pickFault(t.home, t.cfg, "run", name)
	if err != nil {
		return t.runtimeErr(1, "faketart: %v", err)
	}
	if f.Hang {
		return t.hang(f)
	}
	release, err := registerProc(t.home)
	if err != nil {
		return t.runtimeErr(1, "faketart: %v", err)
	}
	defer release()

	lock, cfg, code := t.lockVM(d, name, sigs)
	if lock == nil {
		return code
	}
	defer lock.Close() // held until exit: this is what "running" means

	// Virtualization.framework's start. tart's stop handler is installed now,
	// so a SIGINT meanwhile stops the VM once it started.
	stopping := sleepThrough(time.Duration(t.cfg.StartDelayMS)*time.Millisecond, sigs) && !f.IgnoreStop
	if code, ok := t.startVZ(d, name, cfg); !ok {
		return code
	}
	if f.Fail != "" {
		return t.fail(f) // a start failure inside the run task
	}
	if stopping {
		fmt.Fprintln(t.stdout, "Stopping VM...")
		return 0
	}

	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var die <-chan time.Time
	if f.DieAfterMS > 0 {
		timer := time.NewTimer(time.Duration(f.DieAfterMS) * time.Millisecond)
		defer timer.Stop()
		die = timer.C
	}
	for {
		select {
		case <-sigs:
			if f.IgnoreStop {
				continue // a VM that does not react: stop's SIGKILL ends it
			}
			fmt.Fprintln(t.stdout, "Stopping VM...")
			return 0
		case <-die:
			msg := f.DieError
			if msg == "" {
				msg = defaultDieError
			}
			fmt.Fprintf(t.stdout, "guest has stopped the virtual machine due to error: %s\n", msg)
			return 0
		case <-tick.C:
			if _, err := os.Stat(d.poke()); err == nil {
				os.Remove(d.poke())
				fmt.Fprintln(t.stdout, "guest has stopped the virtual machine")
				return 0
			}
			if _, err := os.Stat(t.home); err != nil {
				// The test that owned this TART_HOME is gone: do not linger.
				return t.runtimeErr(1, "faketart: TART_HOME %s vanished", t.home)
			}
		}
	}
}

// lockVM does run's start phase under the global lock: the MAC collision
// check, the VM set-up (LockDelayMS, SIGINTs lost) and the VM lock. It returns
// the locked config.json and the VM's configuration (read before the lock:
// closing any descriptor of a file drops this process's fcntl lock on it), or
// nil and the exit code.
func (t *tart) lockVM(d vmDir, name string, sigs <-chan os.Signal) (*os.File, vmConfig, int) {
	unlock, err := lockHome(t.home)
	if err != nil {
		return nil, vmConfig{}, t.runtimeErr(1, "%v", err)
	}
	defer unlock()

	cfg, err := d.readConfig()
	if err != nil {
		return nil, cfg, t.runtimeErr(1, "%v", err)
	}
	names, err := localNames(t.home)
	if err != nil {
		return nil, cfg, t.runtimeErr(1, "%v", err)
	}
	collision := false
	for _, n := range names {
		if n == name {
			continue
		}
		od, _ := localDir(t.home, n)
		if pid, err := od.runningPID(); err != nil || pid == 0 {
			continue
		}
		if oc, err := od.readConfig(); err == nil && strings.EqualFold(oc.MACAddress, cfg.MACAddress) {
			collision = true
		}
	}
	if collision {
		fmt.Fprintln(t.stdout, "There is already a running VM with the same MAC address!")
		fmt.Fprintln(t.stdout, "Resetting VM to assign a new MAC address...")
		cfg.MACAddress = randomMAC()
		if err := d.writeConfig(cfg); err != nil {
			return nil, cfg, t.runtimeErr(1, "%v", err)
		}
	}
	// Only tart's root handler is installed: a SIGINT meanwhile is lost.
	sleepThrough(time.Duration(t.cfg.LockDelayMS)*time.Millisecond, sigs)
	// A power-off left from before this run must not stop it; removed before the
	// VM looks running so a PowerOff that sees it running is never lost.
	os.Remove(d.poke())

	lock, ok, err := tryLockVM(d.config())
	if err != nil {
		return nil, cfg, t.runtimeErr(1, "%v", err)
	}
	if !ok {
		return nil, cfg, t.runtimeErr(2, "VM %q is already running!", name)
	}
	b, _ := json.Marshal(runInfo{PID: os.Getpid(), Started: time.Now()})
	if err := writeFileAtomic(d.runInfo(), b); err != nil {
		lock.Close()
		return nil, cfg, t.runtimeErr(1, "%v", err)
	}
	d.touch()
	return lock, cfg, 0
}

// startVZ is the end of Virtualization.framework's start: the two-macOS-VM
// limit, counted over the VMs that booted (plus leaked slots), checked and
// recorded under one lock so racing starts cannot both squeeze in. tart's
// message names every other running local VM, Linux ones included.
func (t *tart) startVZ(d vmDir, name string, cfg vmConfig) (int, bool) {
	unlock, err := lockFile(filepath.Join(t.home, vzLockFile))
	if err != nil {
		return t.runtimeErr(1, "%v", err), false
	}
	defer unlock()
	names, err := localNames(t.home)
	if err != nil {
		return t.runtimeErr(1, "%v", err), false
	}
	var others []string
	booted := t.cfg.LeakedVMs
	for _, n := range names {
		if n == name {
			continue
		}
		od, _ := localDir(t.home, n)
		pid, err := od.runningPID()
		if err != nil || pid == 0 {
			continue
		}
		others = append(others, n)
		oc, err := od.readConfig()
		if err != nil || oc.OS == "linux" {
			continue
		}
		if ri, err := od.readRunInfo(); err == nil && ri.PID == pid && !ri.Booted.IsZero() {
			booted++
		}
	}
	if cfg.OS != "linux" && booted >= t.cfg.vmLimit() {
		msg := "The number of VMs exceeds the system limit"
		if len(others) > 0 {
			msg += " (other running VMs: " + strings.Join(others, ", ") + ")"
		}
		return t.runtimeErr(1, "%s", msg), false
	}
	ri, err := d.readRunInfo()
	if err != nil {
		return t.runtimeErr(1, "%v", err), false
	}
	ri.Booted = time.Now()
	b, _ := json.Marshal(ri)
	if err := writeFileAtomic(d.runInfo(), b); err != nil {
		return t.runtimeErr(1, "%v", err), false
	}
	return 0, true
}

// sleepThrough waits for d, taking the SIGINTs that arrive meanwhile, and
// reports whether any did.
func sleepThrough(d time.Duration, sigs <-chan os.Signal) (interrupted bool) {
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-sigs:
			interrupted = true
		case <-timer.C:
			return interrupted
		}
	}
}

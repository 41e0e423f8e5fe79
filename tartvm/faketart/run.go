package faketart

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

// pollEvery is how often a running fake VM looks for the power-off file.
const pollEvery = 50 * time.Millisecond

// defaultDieError is what a DieAfterMS fault reports when DieError is empty.
const defaultDieError = `Error Domain=VZErrorDomain Code=1 "The virtual machine stopped unexpectedly."`

// run "boots" the VM: it holds the VM's fcntl lock until SIGINT (tart stop),
// the guest powering off (vms/<name>/poweroff appears), or a DieAfterMS fault.
// All three exit 0, like tart.
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
	d, ok := existingDir(t.home, name)
	if !ok {
		// tart checks this in validate(), so ArgumentParser prints it: exit 1.
		fmt.Fprintf(t.stderr, "Error: the specified VM %q does not exist\n", name)
		return 1
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
		t.hang()
	}
	release, err := registerProc(t.home)
	if err != nil {
		return t.runtimeErr(1, "faketart: %v", err)
	}
	defer release()

	lock, code := t.startVM(d, name)
	if lock == nil {
		return code
	}
	defer lock.Close() // held until exit: this is what "running" means
	if f.Fail != "" {
		return t.fail(f) // a start failure inside the run task
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

// startVM does run's start phase under the global lock: MAC collision check,
// the VM lock, and the two-macOS-VM limit, checked atomically with taking the
// lock so two concurrent runs cannot both squeeze in. It returns the locked
// config.json, or nil and the exit code.
func (t *tart) startVM(d vmDir, name string) (*os.File, int) {
	unlock, err := lockHome(t.home)
	if err != nil {
		return nil, t.runtimeErr(1, "%v", err)
	}
	defer unlock()

	cfg, err := d.readConfig()
	if err != nil {
		return nil, t.runtimeErr(1, "%v", err)
	}
	names, err := localNames(t.home)
	if err != nil {
		return nil, t.runtimeErr(1, "%v", err)
	}
	var macOS []string
	collision := false
	for _, n := range names {
		if n == name {
			continue
		}
		od, _ := localDir(t.home, n)
		pid, err := od.runningPID()
		if err != nil || pid == 0 {
			continue
		}
		oc, err := od.readConfig()
		if err != nil {
			continue
		}
		if oc.OS != "linux" {
			macOS = append(macOS, n)
		}
		if strings.EqualFold(oc.MACAddress, cfg.MACAddress) {
			collision = true
		}
	}
	if collision {
		fmt.Fprintln(t.stdout, "There is already a running VM with the same MAC address!")
		fmt.Fprintln(t.stdout, "Resetting VM to assign a new MAC address...")
		cfg.MACAddress = randomMAC()
		if err := d.writeConfig(cfg); err != nil {
			return nil, t.runtimeErr(1, "%v", err)
		}
	}
	// A power-off left from before this run must not stop it; removed before the
	// VM looks running so a PowerOff that sees it running is never lost.
	os.Remove(d.poke())

	lock, ok, err := tryLockVM(d.config())
	if err != nil {
		return nil, t.runtimeErr(1, "%v", err)
	}
	if !ok {
		return nil, t.runtimeErr(2, "VM %q is already running!", name)
	}
	if cfg.OS != "linux" && len(macOS) >= t.cfg.vmLimit() {
		lock.Close()
		msg := "The number of VMs exceeds the system limit"
		if len(macOS) > 0 {
			msg += " (other running VMs: " + strings.Join(macOS, ", ") + ")"
		}
		return nil, t.runtimeErr(1, "%s", msg)
	}
	b, _ := json.Marshal(runInfo{PID: os.Getpid(), Started: time.Now()})
	if err := writeFileAtomic(d.runInfo(), b); err != nil {
		lock.Close()
		return nil, t.runtimeErr(1, "%v", err)
	}
	d.touch()
	return lock, 0
}

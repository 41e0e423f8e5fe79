package faketart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Files under TART_HOME that belong to the fake, not to tart.
const (
	configFile   = "faketart.json"        // Config, read by every invocation
	countsFile   = "faketart-counts.json" // how often each Fault with Times fired
	callsFile    = "faketart-calls.jsonl" // the invocation log
	procsDir     = "faketart-procs"       // one flock'd file per long-lived fake process
	leasesFile   = "faketart-leases.json" // DHCP leases by MAC address, like /var/db/dhcpd_leases
	vzLockFile   = "faketart-vz.lock"     // serialises the VM-limit check of starting VMs
	registryRoot = "faketart-registry"    // images `pull` can fetch: <host>/<path>/<tag>
	pokeFile     = "poweroff"             // vms/<name>/poweroff: the guest shuts down
	runFile      = "faketart-run.json"    // vms/<name>/faketart-run.json: pid and start of the current run
	missingFiles = "VM is missing some of its files (config.json, disk.img or nvram.bin)"
)

// Texts of tart 2.32.1 that tests inject with Fault.Fail.
const (
	// VZStartFailed is what `tart run` prints (exit 1) when
	// Virtualization.framework refuses to start the VM: tart run as root, or
	// no GUI session / a locked login keychain for macOS 15.2+ guests.
	VZStartFailed = `Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start." UserInfo={NSLocalizedFailure=The virtual machine failed to start., NSLocalizedFailureReason=Internal Virtualization error. The virtual machine failed to start.}`
	// TruncatedLeases is `tart ip` reading /var/db/dhcpd_leases while bootpd
	// rewrites it (exit 1).
	TruncatedLeases = `Error: Truncated(name: "truncated DHCPD leases file")`
	// ListVanished is `tart list` when a VM directory disappears while it
	// reads the sizes of its files (exit 1).
	ListVanished = `Error: The file “disk.img” couldn’t be opened because there is no such file.`
)

// Defaults of Config.
const (
	DefaultVersion      = "2.32.1"
	DefaultIP           = "127.0.0.1"
	DefaultBootDelay    = 200 * time.Millisecond
	DefaultVMLimit      = 2
	DefaultLeaseSeconds = 86400 // macOS bootpd's default lease time
)

// Config is $TART_HOME/faketart.json. Every invocation reads it, so a test can
// change it between calls. The zero value means tart's normal behaviour.
type Config struct {
	Version     string  `json:"version,omitempty"`       // `tart --version`; default 2.32.1
	IP          string  `json:"ip,omitempty"`            // address `tart ip` prints; default 127.0.0.1
	BootDelayMS *int    `json:"boot_delay_ms,omitempty"` // from the VM's start until `ip` answers; default 200
	VMLimit     *int    `json:"vm_limit,omitempty"`      // running macOS VMs allowed; default 2, lower simulates foreign VMs
	Faults      []Fault `json:"faults,omitempty"`        // the first matching fault applies

	// LockDelayMS is run's VM set-up, done under the global lock before it
	// takes the VM's own lock: meanwhile `tart stop` says "not running" and a
	// SIGINT is lost (tart installs its stop handler only later), so the VM
	// boots anyway.
	LockDelayMS int `json:"lock_delay_ms,omitempty"`
	// StartDelayMS is Virtualization.framework's start, after the VM lock:
	// the VM-limit error and start failures (Fault.Fail) come at its end.
	StartDelayMS int `json:"start_delay_ms,omitempty"`
	// LeakedVMs are slots of the host's VM counter that leaked (tart issues
	// #445, #1217): with LeakedVMs = VMLimit every macOS VM fails with the
	// limit error although none runs.
	LeakedVMs int `json:"leaked_vms,omitempty"`
	// LeaseSeconds is the DHCP lease time. `ip` answers a VM's unexpired
	// lease whether or not the VM still runs, as tart reads the lease file;
	// default 86400, negative keeps no leases.
	LeaseSeconds int `json:"lease_seconds,omitempty"`
}

// Fault changes the outcome of matching invocations.
type Fault struct {
	Verb       string `json:"verb,omitempty"`        // "clone", "run", "ip", "list", "pull", "--version", ...; "" = every verb
	NamePrefix string `json:"name_prefix,omitempty"` // VM name prefix (clone: the new name; pull: the reference); "" = any
	Times      int    `json:"times,omitempty"`       // fire only for the first N invocations it affects; 0 = always

	Hang       bool `json:"hang,omitempty"`        // sleep until killed (SIGINT ends it unless IgnoreStop)
	SpawnChild bool `json:"spawn_child,omitempty"` // Hang: also leave a child in the process group that ignores SIGINT

	Fail     string `json:"fail,omitempty"`      // print this to stderr and exit ExitCode (run: at the end of its start; pull: half-way)
	ExitCode int    `json:"exit_code,omitempty"` // exit code of Fail; default 1

	NoIP        bool   `json:"no_ip,omitempty"`         // ip: never finds an address
	IP          string `json:"ip,omitempty"`            // ip: print this address instead
	BootDelayMS *int   `json:"boot_delay_ms,omitempty"` // ip: this boot delay instead

	DieAfterMS int    `json:"die_after_ms,omitempty"` // run: the guest stops with an error after N ms (tart still exits 0)
	DieError   string `json:"die_error,omitempty"`    // run: the error text for DieAfterMS
	IgnoreStop bool   `json:"ignore_stop,omitempty"`  // run, Hang: ignore SIGINT, so only SIGKILL ends it

	DelayMS int `json:"delay_ms,omitempty"` // pull (also clone's pull of an OCI image): the download takes this long
}

// relevant reports whether f does anything to verb.
func (f Fault) relevant(verb string) bool {
	if f.Hang || f.Fail != "" {
		return true
	}
	switch verb {
	case "ip":
		return f.NoIP || f.IP != "" || f.BootDelayMS != nil
	case "run":
		return f.DieAfterMS > 0 || f.IgnoreStop
	case "pull":
		return f.DelayMS > 0
	}
	return false
}

func (c Config) version() string {
	if c.Version != "" {
		return c.Version
	}
	return DefaultVersion
}

func (c Config) vmLimit() int {
	if c.VMLimit != nil {
		return *c.VMLimit
	}
	return DefaultVMLimit
}

func (c Config) leaseTime() time.Duration {
	if c.LeaseSeconds == 0 {
		return DefaultLeaseSeconds * time.Second
	}
	return time.Duration(c.LeaseSeconds) * time.Second
}

func (c Config) ip(f Fault) string {
	if f.IP != "" {
		return f.IP
	}
	if c.IP != "" {
		return c.IP
	}
	return DefaultIP
}

func (c Config) bootDelay(f Fault) time.Duration {
	switch {
	case f.BootDelayMS != nil:
		return time.Duration(*f.BootDelayMS) * time.Millisecond
	case c.BootDelayMS != nil:
		return time.Duration(*c.BootDelayMS) * time.Millisecond
	}
	return DefaultBootDelay
}

func readConfig(home string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(home, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", configFile, err)
	}
	return c, nil
}

// WriteConfig replaces $TART_HOME/faketart.json and resets the Times counters.
func WriteConfig(home string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(home, countsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeFileAtomic(filepath.Join(home, configFile), b)
}

// pickFault returns the first fault that matches verb and name and affects the
// verb, counting it against its Times under a lock so concurrent invocations
// agree.
func pickFault(home string, c Config, verb, name string) (Fault, error) {
	for i, f := range c.Faults {
		if (f.Verb != "" && f.Verb != verb) || !strings.HasPrefix(name, f.NamePrefix) || !f.relevant(verb) {
			continue
		}
		if f.Times <= 0 {
			return f, nil
		}
		fired, err := countFault(home, i, f.Times)
		if err != nil {
			return Fault{}, err
		}
		if fired {
			return f, nil
		}
	}
	return Fault{}, nil
}

// countFault increments fault i's counter unless it reached times; it reports
// whether the fault fires.
func countFault(home string, i, times int) (bool, error) {
	unlock, err := lockFile(filepath.Join(home, countsFile+".lock"))
	if err != nil {
		return false, err
	}
	defer unlock()
	path := filepath.Join(home, countsFile)
	counts := map[string]int{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &counts); err != nil {
			return false, fmt.Errorf("%s: %w", countsFile, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	key := strconv.Itoa(i)
	if counts[key] >= times {
		return false, nil
	}
	counts[key]++
	b, err := json.Marshal(counts)
	if err != nil {
		return false, err
	}
	return true, writeFileAtomic(path, b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

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
	configFile = "faketart.json"        // Config, read by every invocation
	countsFile = "faketart-counts.json" // how often each Fault with Times fired
	callsFile  = "faketart-calls.jsonl" // the invocation log
	procsDir   = "faketart-procs"       // one flock'd file per long-lived fake process
	pokeFile   = "poweroff"             // vms/<name>/poweroff: the guest shuts down
	runFile    = "faketart-run.json"    // vms/<name>/faketart-run.json: pid and start of the current run
)

// Defaults of Config.
const (
	DefaultVersion   = "2.32.1"
	DefaultIP        = "127.0.0.1"
	DefaultBootDelay = 200 * time.Millisecond
	DefaultVMLimit   = 2
)

// Config is $TART_HOME/faketart.json. Every invocation reads it, so a test can
// change it between calls. The zero value means tart's normal behaviour.
type Config struct {
	Version     string  `json:"version,omitempty"`       // `tart --version`; default 2.32.1
	IP          string  `json:"ip,omitempty"`            // address `tart ip` prints; default 127.0.0.1
	BootDelayMS *int    `json:"boot_delay_ms,omitempty"` // from `run` start until `ip` answers; default 200
	VMLimit     *int    `json:"vm_limit,omitempty"`      // running macOS VMs allowed; default 2, lower simulates foreign VMs
	Faults      []Fault `json:"faults,omitempty"`        // the first matching fault applies
}

// Fault changes the outcome of matching invocations.
type Fault struct {
	Verb       string `json:"verb,omitempty"`        // "clone", "run", "ip", "list", "--version", ...; "" = every verb
	NamePrefix string `json:"name_prefix,omitempty"` // VM name prefix (clone: the new name); "" = any
	Times      int    `json:"times,omitempty"`       // fire only for the first N invocations it affects; 0 = always

	Hang     bool   `json:"hang,omitempty"`      // sleep until killed
	Fail     string `json:"fail,omitempty"`      // print this to stderr and exit ExitCode (run: after taking the VM lock)
	ExitCode int    `json:"exit_code,omitempty"` // exit code of Fail; default 1

	NoIP        bool   `json:"no_ip,omitempty"`         // ip: never finds an address
	IP          string `json:"ip,omitempty"`            // ip: print this address instead
	BootDelayMS *int   `json:"boot_delay_ms,omitempty"` // ip: this boot delay instead

	DieAfterMS int    `json:"die_after_ms,omitempty"` // run: the guest stops with an error after N ms (tart still exits 0)
	DieError   string `json:"die_error,omitempty"`    // run: the error text for DieAfterMS
	IgnoreStop bool   `json:"ignore_stop,omitempty"`  // run: ignore SIGINT, so `tart stop` escalates to SIGKILL
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

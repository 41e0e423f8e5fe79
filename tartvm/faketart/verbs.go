package faketart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// clone copies a local VM or an OCI image to a new local name, silently
// replacing an existing VM of that name, as tart does. An OCI image not yet in
// the cache is pulled first (from the fake registry, see SeedRemote). Like
// tart, it opens its source before taking the global lock, and copies and
// moves under it.
func (t *tart) clone(p parsed) int {
	source, name := p.args[0], p.args[1]
	if strings.Contains(name, "/") {
		return t.usage(cmdClone, usagef("<new-name> should be a local name"))
	}
	if _, err := p.intFlag(cmdClone, "concurrency", 4, 1, math.MaxInt32); err != nil {
		return t.usage(cmdClone, err)
	}
	if _, err := p.intFlag(cmdClone, "prune-limit", 100, 0, math.MaxInt32); err != nil {
		return t.usage(cmdClone, err)
	}
	dst, ok := localDir(t.home, name)
	if !ok {
		return t.usage(cmdClone, usagef("<new-name> should be a local name"))
	}

	var src vmDir
	if strings.Contains(source, "/") {
		d, ok := ociDir(t.home, source)
		if !ok {
			return t.runtimeErr(1, "failed to parse remote name: %s", source)
		}
		if !d.initialized() {
			if code := t.pullOCI(source, d); code != 0 {
				return code
			}
		}
		src = d
	} else {
		d, code, ok := t.open(source)
		if !ok {
			return code
		}
		src = d
	}

	cfg, err := src.readConfig()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}

	tmpRoot := filepath.Join(t.home, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	tmp, err := os.MkdirTemp(tmpRoot, "clone-")
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	defer os.RemoveAll(tmp) // gone after the move; cleans up after a failure

	unlock, err := lockHome(t.home)
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	defer unlock()
	// A new MAC only when some local VM already uses the source's.
	if taken, err := t.macTaken(cfg.MACAddress); err != nil {
		return t.runtimeErr(1, "%v", err)
	} else if taken {
		cfg.MACAddress = randomMAC()
	}
	// The source was opened before the lock: a rename or delete since (which
	// take no lock) breaks the copy, as it breaks tart's.
	if err := copyVM(src, vmDir(tmp), cfg); err != nil {
		return t.nsError("The file “%s” couldn’t be opened because there is no such file.", filepath.Base(pathOf(err)))
	}
	if err := os.RemoveAll(string(dst)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if err := os.Rename(tmp, string(dst)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	dst.touch()
	return 0
}

// pathOf is the file an *os.PathError is about, else "".
func pathOf(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	return ""
}

// copyVM writes cfg, nvram.bin and a disk.img of the source's size. The disk is
// created sparse rather than copied: the stand-in for APFS copy-on-write.
func copyVM(src, dst vmDir, cfg vmConfig) error {
	if err := dst.writeConfig(cfg); err != nil {
		return err
	}
	if err := copyFile(src.nvram(), dst.nvram()); err != nil {
		return err
	}
	fi, err := os.Stat(src.disk())
	if err != nil {
		return err
	}
	return makeSparse(dst.disk(), fi.Size())
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func makeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (t *tart) macTaken(mac string) (bool, error) {
	names, err := localNames(t.home)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		d, _ := localDir(t.home, n)
		if c, err := d.readConfig(); err == nil && strings.EqualFold(c.MACAddress, mac) {
			return true, nil
		}
	}
	return false, nil
}

var displayRe = regexp.MustCompile(`^(\d+)x(\d+)(pt|px)?$`)

// minMemory is Virtualization.framework's minimumAllowedMemorySize.
const minMemory = 128 << 20

// set edits config.json; changes apply at the next run. Resources below the
// image's minimum (or Virtualization.framework's) fail with tart's
// LessThanMinimalResourcesError, which is not a RuntimeError: "Error: " and
// exit 1. --cpu and --memory are unsigned, so 0 parses and fails the same way.
func (t *tart) set(p parsed) int {
	cpu, uerr := p.intFlag(cmdSet, "cpu", -1, 0, math.MaxUint16)
	if uerr != nil {
		return t.usage(cmdSet, uerr)
	}
	memory, uerr := p.intFlag(cmdSet, "memory", -1, 0, math.MaxInt32)
	if uerr != nil {
		return t.usage(cmdSet, uerr)
	}
	diskSize, uerr := p.intFlag(cmdSet, "disk-size", 0, 1, math.MaxUint16)
	if uerr != nil {
		return t.usage(cmdSet, uerr)
	}
	name := p.args[0]
	d, code, ok := t.open(name)
	if !ok {
		return code
	}
	cfg, err := d.readConfig()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	const minimal = "LessThanMinimalResourcesError: VM should have %d %s at minimum (requested %d)"
	if cpu >= 0 {
		if cfg.OS == "darwin" && cpu < cfg.CPUCountMin {
			return t.nsError(minimal, cfg.CPUCountMin, "CPU cores", cpu)
		}
		if cpu < 1 {
			return t.nsError(minimal, 1, "CPU cores", cpu)
		}
		cfg.CPUCount = cpu
	}
	if memory >= 0 {
		bytes := uint64(memory) * 1024 * 1024
		if cfg.OS == "darwin" && bytes < cfg.MemorySizeMin {
			return t.nsError(minimal, cfg.MemorySizeMin, "bytes of memory", bytes)
		}
		if bytes < minMemory {
			return t.nsError(minimal, minMemory, "bytes of memory", bytes)
		}
		cfg.MemorySize = bytes
	}
	if v := p.str("display", ""); v != "" {
		m := displayRe.FindStringSubmatch(v)
		if m == nil {
			return t.usage(cmdSet, usagef("The value '%s' is invalid for '--display <display>'", v))
		}
		cfg.Display.Width, _ = strconv.Atoi(m[1])
		cfg.Display.Height, _ = strconv.Atoi(m[2])
		cfg.Display.Unit = m[3]
	}
	if p.has("random-mac") {
		cfg.MACAddress = randomMAC()
	}
	if diskSize > 0 {
		cur := d.diskSize()
		want := int64(diskSize) * 1_000_000_000
		if want < cur {
			return t.runtimeErr(1, "new disk size of %d GB should be larger than the current disk size of %d GB", diskSize, cur/1_000_000_000)
		}
		if err := os.Truncate(d.disk(), want); err != nil {
			return t.runtimeErr(1, "%v", err)
		}
	}
	if err := d.writeConfig(cfg); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	return 0
}

func checkFormat(p parsed) (string, *usageError) {
	f := p.str("format", "text")
	if f != "text" && f != "json" {
		return "", usagef("The value '%s' is invalid for '--format <format>'", f)
	}
	return f, nil
}

func (t *tart) get(p parsed) int {
	format, uerr := checkFormat(p)
	if uerr != nil {
		return t.usage(cmdGet, uerr)
	}
	name := p.args[0]
	d, code, ok := t.open(name)
	if !ok {
		return code
	}
	cfg, err := d.readConfig()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	state, running, err := d.stateName()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	apparent, allocated := d.sizes()
	fields := []field{
		{"OS", cfg.OS}, {"CPU", cfg.CPUCount}, {"Memory", cfg.MemorySize / 1024 / 1024},
		{"Disk", int(apparent / 1_000_000_000)}, {"DiskFormat", cfg.DiskFormat},
		{"Size", fmt.Sprintf("%.3f", float64(allocated)/1e9)}, {"Display", cfg.Display.String()},
		{"Running", running}, {"State", state},
	}
	if format == "json" {
		fmt.Fprintln(t.stdout, swiftJSON([][]field{fields}, false))
		return 0
	}
	printTable(t.stdout, [][]field{fields})
	return 0
}

// printTable is the text format: the fields as columns, without the
// deprecated Running.
func printTable(w io.Writer, rows [][]field) {
	if len(rows) == 0 {
		fmt.Fprintln(w)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	var head []string
	for _, f := range rows[0] {
		if f.key != "Running" {
			head = append(head, f.key)
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		var cells []string
		for _, f := range r {
			if f.key != "Running" {
				cells = append(cells, fmt.Sprint(f.value))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func (t *tart) list(p parsed) int {
	source := p.str("source", "")
	if source != "" && source != "local" && source != "oci" {
		return t.usage(cmdList, usagef("'%s' is not a valid <source>", source))
	}
	format, uerr := checkFormat(p)
	if uerr != nil {
		return t.usage(cmdList, uerr)
	}
	var rows [][]field
	add := func(src, name string, d vmDir) error {
		state, running, err := d.stateName()
		if err != nil {
			return err
		}
		apparent, allocated := d.sizes()
		rows = append(rows, []field{
			{"Source", src}, {"Name", name},
			{"Disk", int(apparent / 1_000_000_000)}, {"Size", int(allocated / 1_000_000_000)},
			{"Accessed", d.accessed().UTC().Format(time.RFC3339)},
			{"Running", running}, {"State", state},
		})
		return nil
	}
	if source == "" || source == "local" {
		names, err := localNames(t.home)
		if err != nil {
			return t.runtimeErr(1, "%v", err)
		}
		for _, n := range names {
			d, _ := localDir(t.home, n)
			if err := add("local", n, d); err != nil {
				return t.runtimeErr(1, "%v", err)
			}
		}
	}
	if source == "" || source == "oci" {
		names, dirs, err := ociNames(t.home)
		if err != nil {
			return t.runtimeErr(1, "%v", err)
		}
		for _, n := range names {
			if err := add("OCI", n, dirs[n]); err != nil {
				return t.runtimeErr(1, "%v", err)
			}
		}
	}
	switch {
	case p.has("quiet"):
		for _, r := range rows {
			fmt.Fprintln(t.stdout, r[1].value)
		}
	case format == "json":
		fmt.Fprintln(t.stdout, swiftJSON(rows, true))
	default:
		printTable(t.stdout, rows)
	}
	return 0
}

// ip answers from the fake's DHCP leases, as tart reads the host's lease
// file: any unexpired lease for the VM's MAC address, whether the VM runs or
// not (a stopped VM's stale lease too). A running VM gets its lease once it
// has been up for the boot delay. It polls every 50 ms (tart: every second)
// until --wait runs out.
func (t *tart) ip(p parsed) int {
	wait, uerr := p.intFlag(cmdIP, "wait", 0, 0, math.MaxUint16)
	if uerr != nil {
		return t.usage(cmdIP, uerr)
	}
	switch r := p.str("resolver", "dhcp"); r {
	case "dhcp", "arp", "agent":
	default:
		return t.usage(cmdIP, usagef("The value '%s' is invalid for '--resolver <resolver>'", r))
	}
	name := p.args[0]
	d, code, ok := t.open(name)
	if !ok {
		return code
	}
	cfg, err := d.readConfig()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	f, err := pickFault(t.home, t.cfg, "ip", name)
	if err != nil {
		return t.runtimeErr(1, "faketart: %v", err)
	}
	deadline := t.start.Add(time.Duration(wait) * time.Second)
	for !f.NoIP {
		pid, err := d.runningPID()
		if err != nil {
			return t.runtimeErr(1, "%v", err)
		}
		if pid != 0 {
			if ri, err := d.readRunInfo(); err == nil && ri.PID == pid && !ri.Booted.IsZero() &&
				time.Since(ri.Booted) >= t.cfg.bootDelay(f) {
				ip := t.cfg.ip(f)
				if err := t.grantLease(cfg.MACAddress, ip); err != nil {
					return t.runtimeErr(1, "%v", err)
				}
				fmt.Fprintln(t.stdout, ip)
				return 0
			}
		}
		if ip, err := t.lease(cfg.MACAddress); err != nil {
			return t.runtimeErr(1, "%v", err)
		} else if ip != "" {
			fmt.Fprintln(t.stdout, ip)
			return 0
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
	if f.NoIP && wait > 0 {
		time.Sleep(time.Until(deadline))
	}
	msg := "no IP address found"
	if pid, err := d.runningPID(); err == nil && pid == 0 {
		msg += ", is your VM running?"
	}
	return t.runtimeErr(1, "%s", msg)
}

// lease is the unexpired lease for mac, "" when there is none.
func (t *tart) lease(mac string) (string, error) {
	leases, err := readLeases(t.home)
	if err != nil {
		return "", err
	}
	l, ok := leases[strings.ToLower(mac)]
	if !ok || time.Now().After(l.Expires) {
		return "", nil
	}
	return l.IP, nil
}

// grantLease records a lease for mac, as bootpd does when the guest asks.
func (t *tart) grantLease(mac, ip string) error {
	if t.cfg.leaseTime() < 0 {
		return nil
	}
	unlock, err := lockFile(filepath.Join(t.home, leasesFile+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	leases, err := readLeases(t.home)
	if err != nil {
		return err
	}
	leases[strings.ToLower(mac)] = lease{IP: ip, Expires: time.Now().Add(t.cfg.leaseTime())}
	b, err := json.Marshal(leases)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(t.home, leasesFile), b)
}

type lease struct {
	IP      string    `json:"ip"`
	Expires time.Time `json:"expires"`
}

func readLeases(home string) (map[string]lease, error) {
	leases := map[string]lease{}
	b, err := os.ReadFile(filepath.Join(home, leasesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return leases, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &leases); err != nil {
		return nil, fmt.Errorf("%s: %w", leasesFile, err)
	}
	return leases, nil
}

// stop sends SIGINT to the VM's run process, polls every 100 ms for the lock to
// go, and sends SIGKILL after --timeout seconds. Like tart it does not wait
// after the SIGKILL, so a `delete` right after may still find the VM running.
func (t *tart) stop(p parsed) int {
	timeout, uerr := p.intFlag(cmdStop, "timeout", 30, 0, math.MaxInt32)
	if uerr != nil {
		return t.usage(cmdStop, uerr)
	}
	name := p.args[0]
	d, code, ok := t.open(name)
	if !ok {
		return code
	}
	state, _, err := d.stateName()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	switch state {
	case "suspended":
		os.Remove(d.state())
		return 0
	case "stopped":
		return t.runtimeErr(2, "VM %q is not running", name)
	}
	pid, err := d.runningPID()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if pid == 0 { // stopped between the two looks
		return t.runtimeErr(2, "VM %q is not running", name)
	}
	syscall.Kill(pid, syscall.SIGINT) // unchecked, like tart: the VM may be stopping already
	for left := time.Duration(timeout) * time.Second; left > 0; left -= 100 * time.Millisecond {
		if pid, err = d.runningPID(); err != nil {
			return t.runtimeErr(1, "%v", err)
		} else if pid == 0 {
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pid, err = d.runningPID(); err == nil && pid == 0 {
		return 0
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return t.runtimeErr(1, "failed to forcefully terminate the VM %q: %v", name, err)
	}
	return 0
}

// delete removes local VMs or cached OCI images; it refuses running VMs. Like
// tart it takes no global lock: only the VM's own lock, without waiting.
func (t *tart) delete(p parsed) int {
	for _, name := range p.args {
		var d vmDir
		var ok bool
		if strings.Contains(name, "/") {
			d, ok = ociDir(t.home, name)
		} else {
			d, ok = localDir(t.home, name)
		}
		if !ok || !d.exists() {
			return t.doesNotExist(name)
		}
		lock, free, err := tryLockVM(d.config())
		if err != nil {
			return t.runtimeErr(1, "%v", err)
		}
		if !free {
			return t.runtimeErr(1, "VM %q is running", name)
		}
		err = os.RemoveAll(string(d))
		lock.Close()
		if err != nil {
			return t.runtimeErr(1, "%v", err)
		}
	}
	return 0
}

// rename moves a local VM; like tart it takes no lock and does not check
// whether the VM runs.
func (t *tart) rename(p parsed) int {
	name, newName := p.args[0], p.args[1]
	d, ok := existingDir(t.home, name)
	if !ok {
		return t.usage(cmdRename, usagef("failed to rename a non-existent local VM: %s", name))
	}
	nd, ok := localDir(t.home, newName)
	if !ok {
		return t.usage(cmdRename, usagef("<new-name> should be a local name"))
	}
	if nd.initialized() {
		return t.usage(cmdRename, usagef("failed to rename VM %s, target VM %s already exists, delete it first!", name, newName))
	}
	// tart's FileManager.replaceItemAt replaces a leftover target directory.
	if err := os.RemoveAll(string(nd)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if err := os.Rename(string(d), string(nd)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	return 0
}

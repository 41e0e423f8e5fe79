package faketart

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VMOptions describe a seeded image. Zero fields take the defaults of a
// cirruslabs macOS image: darwin, 4 CPUs, 8192 MB, 50 GB disk, 1024x768. The
// minimums "set" enforces for darwin are 2 CPUs and 4096 MB (or less if the
// image has less).
type VMOptions struct {
	OS       string // "darwin" (counts against the two-VM limit) or "linux"
	CPU      int
	MemoryMB int
	DiskGB   int    // apparent size of the sparse disk.img
	MAC      string // default: a random one
}

// SeedVM creates a stopped local VM name under home, replacing any VM of that name.
func SeedVM(home, name string, o VMOptions) error {
	d, ok := localDir(home, name)
	if !ok {
		return fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	return seed(d, o)
}

// SeedOCI creates a cached OCI image such as ghcr.io/org/img:tag (or
// ...@sha256:...), which `clone` can copy and `list --source oci` shows.
func SeedOCI(home, ref string, o VMOptions) error {
	d, ok := ociDir(home, ref)
	if !ok {
		return fmt.Errorf("faketart: %q is not an OCI reference", ref)
	}
	return seed(d, o)
}

// SeedRemote puts an image such as ghcr.io/org/img:tag in the fake registry:
// `pull` and `clone` of that reference fetch it into the OCI cache, slowly or
// failing when a Fault{Verb: "pull"} says so. References not seeded anywhere
// fail to pull with the registry's 404.
func SeedRemote(home, ref string, o VMOptions) error {
	d, ok := registryDir(home, ref)
	if !ok {
		return fmt.Errorf("faketart: %q is not an OCI reference", ref)
	}
	return seed(d, o)
}

// RemoveDisk deletes the disk.img of local VM name, leaving a directory that
// tart reports as "VM is missing some of its files" (exit 1) and leaves out of
// `list`: what an interrupted copy or a careless clean-up leaves behind.
func RemoveDisk(home, name string) error {
	d, ok := localDir(home, name)
	if !ok {
		return fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	return os.Remove(d.disk())
}

func seed(d vmDir, o VMOptions) error {
	if o.OS == "" {
		o.OS = "darwin"
	}
	if o.CPU == 0 {
		o.CPU = 4
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 8192
	}
	if o.DiskGB == 0 {
		o.DiskGB = 50
	}
	if o.MAC == "" {
		o.MAC = randomMAC()
	}
	if err := os.RemoveAll(string(d)); err != nil {
		return err
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return err
	}
	cfg := vmConfig{
		Version: 1, OS: o.OS, Arch: "arm64",
		CPUCountMin: min(o.CPU, 2), CPUCount: o.CPU,
		MemorySizeMin: uint64(min(o.MemoryMB, 4096)) * 1024 * 1024, MemorySize: uint64(o.MemoryMB) * 1024 * 1024,
		MACAddress: o.MAC, Display: display{Width: 1024, Height: 768}, DiskFormat: "raw",
	}
	if err := d.writeConfig(cfg); err != nil {
		return err
	}
	if err := os.WriteFile(d.nvram(), []byte("fake nvram\n"), 0o644); err != nil {
		return err
	}
	return makeSparse(d.disk(), int64(o.DiskGB)*1_000_000_000)
}

// ReadCalls returns the invocation log of home, oldest first.
func ReadCalls(home string) ([]Call, error) {
	f, err := os.Open(filepath.Join(home, callsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var calls []Call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var c Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s: %w", callsFile, err)
		}
		calls = append(calls, c)
	}
	return calls, sc.Err()
}

// RunningPID returns the pid of the `tart run` holding VM name, 0 if it is not running.
func RunningPID(home, name string) (int, error) {
	d, ok := localDir(home, name)
	if !ok {
		return 0, fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	return d.runningPID()
}

// PowerOff makes the guest of a running VM shut itself down, as `shutdown -h
// now` would: its `tart run` prints "guest has stopped the virtual machine" and
// exits 0 within 50 ms. It fails if the VM is not running.
func PowerOff(home, name string) error {
	d, ok := localDir(home, name)
	if !ok {
		return fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	pid, err := d.runningPID()
	if err != nil {
		return err
	}
	if pid == 0 {
		return fmt.Errorf("faketart: VM %q is not running", name)
	}
	return os.WriteFile(d.poke(), nil, 0o644)
}

// LiveProcs returns the pids of the fake processes of home that are still
// alive: running VMs, hung verbs and the children they spawned. A process
// counts as alive until it and every process that inherited its registration
// have exited, so an empty result means nothing of the fake is left.
func LiveProcs(home string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(home, procsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var alive []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ok, err := procAlive(filepath.Join(home, procsDir, e.Name()))
		if err != nil {
			return nil, err
		}
		if ok {
			alive = append(alive, pid)
		}
	}
	return alive, nil
}

// KillAll SIGKILLs every live fake process of home (running VMs, hung verbs)
// and waits up to timeout for them to be gone. Tests call it at cleanup.
func KillAll(home string, timeout time.Duration) error {
	dir := filepath.Join(home, procsDir)
	deadline := time.Now().Add(timeout)
	for {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var alive []int
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			ok, err := procAlive(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if ok {
				alive = append(alive, pid)
				// The lock proves the pid is still the fake process that registered it.
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faketart: processes %v still alive after %v", alive, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package faketart

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// vmConfig is the fake's vms/<name>/config.json, with tart's key names.
type vmConfig struct {
	Version       int     `json:"version"`
	OS            string  `json:"os"`
	Arch          string  `json:"arch"`
	CPUCountMin   int     `json:"cpuCountMin"`
	CPUCount      int     `json:"cpuCount"`
	MemorySizeMin uint64  `json:"memorySizeMin"`
	MemorySize    uint64  `json:"memorySize"` // bytes
	MACAddress    string  `json:"macAddress"`
	Display       display `json:"display"`
	DiskFormat    string  `json:"diskFormat"`
}

type display struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Unit   string `json:"unit,omitempty"` // "pt" or "px"
}

func (d display) String() string {
	s := fmt.Sprintf("%dx%d", d.Width, d.Height)
	return s + d.Unit
}

// vmDir is one VM directory: config.json, disk.img (sparse), nvram.bin.
type vmDir string

func (d vmDir) config() string  { return filepath.Join(string(d), "config.json") }
func (d vmDir) disk() string    { return filepath.Join(string(d), "disk.img") }
func (d vmDir) nvram() string   { return filepath.Join(string(d), "nvram.bin") }
func (d vmDir) state() string   { return filepath.Join(string(d), "state.vzvmsave") }
func (d vmDir) poke() string    { return filepath.Join(string(d), pokeFile) }
func (d vmDir) runInfo() string { return filepath.Join(string(d), runFile) }

// exists reports whether the VM has its config.json: enough for `delete`,
// which only needs the file it locks.
func (d vmDir) exists() bool {
	fi, err := os.Stat(d.config())
	return err == nil && fi.Mode().IsRegular()
}

// initialized reports whether all three files are there, as tart's
// VMDirectory.initialized does: `list` skips other directories and the other
// verbs refuse them with missingFiles.
func (d vmDir) initialized() bool {
	for _, p := range []string{d.config(), d.disk(), d.nvram()} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func (d vmDir) dirExists() bool {
	fi, err := os.Stat(string(d))
	return err == nil && fi.IsDir()
}

func (d vmDir) readConfig() (vmConfig, error) {
	var c vmConfig
	b, err := os.ReadFile(d.config())
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", d.config(), err)
	}
	return c, nil
}

// writeConfig rewrites config.json in place: a running VM's fcntl lock is on
// this inode, and replacing the file would make the VM look stopped.
func (d vmDir) writeConfig(c vmConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.config(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runningPID is the pid of the `tart run` holding the VM, 0 when stopped.
func (d vmDir) runningPID() (int, error) { return lockHolder(d.config()) }

// stateName is tart's State: running, suspended or stopped.
func (d vmDir) stateName() (string, bool, error) {
	pid, err := d.runningPID()
	if err != nil {
		return "", false, err
	}
	if pid != 0 {
		return "running", true, nil
	}
	if _, err := os.Stat(d.state()); err == nil {
		return "suspended", false, nil
	}
	return "stopped", false, nil
}

// sizes returns the apparent size of config+disk+nvram and the allocated size,
// in bytes.
func (d vmDir) sizes() (apparent, allocated int64) {
	for _, p := range []string{d.config(), d.disk(), d.nvram()} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			allocated += int64(st.Blocks) * 512
		}
	}
	return apparent, allocated
}

func (d vmDir) diskSize() int64 {
	fi, err := os.Stat(d.disk())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// accessed is the last clone/run of the VM; tart keeps it as the access date
// of the VM directory's files, the fake as nvram.bin's modification time.
func (d vmDir) accessed() time.Time {
	fi, err := os.Stat(d.nvram())
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func (d vmDir) touch() {
	now := time.Now()
	os.Chtimes(d.nvram(), now, now)
}

// localDir is the directory of local VM name; ok is false for names that are
// not local names (tart treats those as remote).
func localDir(home, name string) (vmDir, bool) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return "", false
	}
	return vmDir(filepath.Join(home, "vms", name)), true
}

// existingDir is the directory of local VM name when that VM exists with all
// its files.
func existingDir(home, name string) (vmDir, bool) {
	d, ok := localDir(home, name)
	return d, ok && d.initialized()
}

// localNames lists local VMs, sorted.
func localNames(home string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(home, "vms"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && vmDir(filepath.Join(home, "vms", e.Name())).initialized() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ociDir maps an OCI reference to its cache directory: host/ns/img/<tag> or
// host/ns/img/sha256:<digest>, like tart's cache/OCIs layout.
func ociDir(home, ref string) (vmDir, bool) {
	repo, digest, isDigest := strings.Cut(ref, "@")
	tag := ""
	if !isDigest {
		slash := strings.LastIndex(ref, "/")
		colon := strings.LastIndex(ref, ":")
		if colon > slash {
			repo, tag = ref[:colon], ref[colon+1:]
		} else {
			repo, tag = ref, "latest"
		}
	}
	if !strings.Contains(repo, "/") || strings.Contains(repo, "..") {
		return "", false
	}
	leaf := tag
	if isDigest {
		leaf = digest
	}
	if leaf == "" || strings.ContainsAny(leaf, "/\\") {
		return "", false
	}
	return vmDir(filepath.Join(home, "cache", "OCIs", filepath.FromSlash(repo), leaf)), true
}

// ociNames lists cached OCI images as references, sorted.
func ociNames(home string) ([]string, map[string]vmDir, error) {
	root := filepath.Join(home, "cache", "OCIs")
	dirs := map[string]vmDir{}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() || !vmDir(path).initialized() {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		repo, leaf := rel[:strings.LastIndex(rel, "/")], rel[strings.LastIndex(rel, "/")+1:]
		sep := ":"
		if strings.HasPrefix(leaf, "sha256:") {
			sep = "@"
		}
		dirs[repo+sep+leaf] = vmDir(path)
		return fs.SkipDir
	})
	names := make([]string, 0, len(dirs))
	for n := range dirs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, dirs, err
}

// randomMAC returns a locally administered unicast MAC address, like
// VZMACAddress.randomLocallyAdministered.
func randomMAC() string {
	var b [6]byte
	rand.Read(b[:])
	b[0] = (b[0] | 0x02) &^ 0x01
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// runInfo is vms/<name>/faketart-run.json, written by `run` once it holds the
// VM lock and again once Virtualization.framework started the VM: `ip`
// measures the boot delay from Booted, and the VM-limit check counts the VMs
// that booted.
type runInfo struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Booted  time.Time `json:"booted,omitzero"`
}

func (d vmDir) readRunInfo() (runInfo, error) {
	var r runInfo
	b, err := os.ReadFile(d.runInfo())
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

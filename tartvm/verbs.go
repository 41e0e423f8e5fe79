package tartvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// seconds renders d as whole seconds for tart's integer flags, rounding up so a
// sub-second wait is not turned into "don't wait".
func seconds(d time.Duration, max int) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 0 {
		s = 0
	}
	if s > max {
		s = max
	}
	return strconv.Itoa(s)
}

// checkName rejects names tart would misread (empty, flags) or that would
// escape LogDir; tart's own rules for the rest are left to tart.
func checkName(verb, name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return fmt.Errorf("tart %s: invalid local VM name %q", verb, name)
	}
	return nil
}

// Clone copies source (a local or OCI image) to the new local VM name. Unlike
// tart, it refuses to overwrite an existing VM: it checks `tart list` first
// (a VM created between that check and the clone is still overwritten).
func (c *Client) Clone(ctx context.Context, source, name string) error {
	if err := checkName("clone", name); err != nil {
		return err
	}
	if source == "" {
		return fmt.Errorf("tart clone %s: empty source image", name)
	}
	vms, err := c.List(ctx)
	if err != nil {
		return fmt.Errorf("tart clone %s: checking for an existing VM: %w", name, err)
	}
	for _, vm := range vms {
		if vm.Name == name {
			return fmt.Errorf("tart clone %s: %w (tart would overwrite it silently; delete it first)", name, ErrExists)
		}
	}
	_, err = c.exec(ctx, call{verb: "clone", name: name, args: []string{"clone", source, name}, timeout: cloneTimeout})
	return err
}

// Set gives the VM a random MAC address (so no two clones of an image share a
// DHCP lease) and, when positive, a CPU count and a memory size in MB.
func (c *Client) Set(ctx context.Context, name string, cpu, memoryMB int) error {
	if err := checkName("set", name); err != nil {
		return err
	}
	args := []string{"set", name, "--random-mac"}
	if cpu > 0 {
		args = append(args, "--cpu", strconv.Itoa(cpu))
	}
	if memoryMB > 0 {
		args = append(args, "--memory", strconv.Itoa(memoryMB))
	}
	_, err := c.exec(ctx, call{verb: "set", name: name, args: args, timeout: editTimeout})
	return err
}

// IP waits up to wait (rounded up to whole seconds) for the VM's IPv4 address.
func (c *Client) IP(ctx context.Context, name string, wait time.Duration) (string, error) {
	if err := checkName("ip", name); err != nil {
		return "", err
	}
	args := []string{"ip", "--wait", seconds(wait, math.MaxUint16), name}
	out, err := c.exec(ctx, call{verb: "ip", name: name, args: args, timeout: wait + slackTimeout})
	if err != nil {
		return "", err
	}
	ip := firstLine(out)
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("tart ip %s: unexpected output %q", name, ip)
	}
	return ip, nil
}

// Stop stops a running VM: tart sends SIGINT and, after timeout (whole
// seconds), SIGKILL. A VM that is not running, or does not exist, is not an
// error, so teardown can call it unconditionally.
//
// "Not running" is not proof that the VM is down: tart takes the VM's lock
// only after setting it up, so a `tart run` that just started is invisible to
// `tart stop` and boots anyway. The Backend, which knows its own `tart run`
// processes, retries in that case.
func (c *Client) Stop(ctx context.Context, name string, timeout time.Duration) error {
	err := c.stop(ctx, name, timeout)
	if NotRunning(err) || NotFound(err) {
		return nil
	}
	return err
}

// stop is `tart stop` with tart's answer unfiltered.
func (c *Client) stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := checkName("stop", name); err != nil {
		return err
	}
	args := []string{"stop", "--timeout", seconds(timeout, math.MaxInt32), name}
	_, err := c.exec(ctx, call{verb: "stop", name: name, args: args, timeout: timeout + slackTimeout})
	return err
}

// Delete removes a local VM; a missing one is not an error. tart refuses to
// delete a running VM (exit 1, `VM "x" is running`: see VMRunning).
func (c *Client) Delete(ctx context.Context, name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	_, err := c.exec(ctx, call{verb: "delete", name: name, args: []string{"delete", name}, timeout: deleteTimeout})
	if NotFound(err) {
		return nil
	}
	return err
}

// Rename renames a local VM. tart refuses (exit 64) when name is missing or
// newName exists, and does not check whether the VM runs.
func (c *Client) Rename(ctx context.Context, name, newName string) error {
	if err := checkName("rename", name); err != nil {
		return err
	}
	if err := checkName("rename", newName); err != nil {
		return err
	}
	_, err := c.exec(ctx, call{verb: "rename", name: name, args: []string{"rename", name, newName}, timeout: editTimeout})
	return err
}

// Pull fetches an OCI image (ghcr.io/org/img:tag) into tart's cache, so a
// later clone of it is quick. It can take an hour for a macOS image; it is
// bounded by ctx and a two-hour cap. tart's progress lines ("pulling
// manifest...", "pulling disk (20.1 GB compressed)...", "42%") are written
// to progress, when not nil, as they come. A local image name is not pulled
// (tart says so and succeeds).
//
// tart may prune other cached images to make room (TART_NO_AUTO_PRUNE in the
// environment turns that off); check FreeDisk first.
func (c *Client) Pull(ctx context.Context, ref string, progress io.Writer) error {
	_, err := c.pull(ctx, ref, progress)
	return err
}

// pull is Pull returning tart's output.
func (c *Client) pull(ctx context.Context, ref string, progress io.Writer) ([]byte, error) {
	if ref == "" || strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\r\n") {
		return nil, fmt.Errorf("tart pull: invalid image reference %q", ref)
	}
	var w io.Writer
	if progress != nil {
		w = &lineWriter{w: progress}
	}
	// CI makes tart print each progress update as a plain line instead of
	// redrawing the last one with terminal escapes.
	return c.exec(ctx, call{verb: "pull", name: ref, args: []string{"pull", ref}, timeout: pullTimeout,
		env: []string{"CI=true"}, stdout: w})
}

// lineWriter passes whole lines on, without terminal escape sequences or
// carriage returns, so a log sees one progress update per line.
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := stripEscapes(l.buf[:i])
		l.buf = l.buf[i+1:]
		if len(bytes.TrimSpace(line)) > 0 {
			l.w.Write(append(line, '\n')) // a progress sink that fails must not fail the pull
		}
	}
	if len(l.buf) > 64<<10 { // no newline in sight: not tart's progress
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// stripEscapes removes ANSI CSI sequences (ESC [ ... final byte) and CRs.
func stripEscapes(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[':
			i += 2
			for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
				i++
			}
		case b[i] == '\r':
		default:
			out = append(out, b[i])
		}
	}
	return out
}

// VMConfig is `tart get --format json`.
type VMConfig struct {
	OS         string // "darwin" or "linux"
	CPU        int
	Memory     int // MB
	Disk       int // GB
	DiskFormat string
	Size       string // allocated GB, formatted by tart as "%.3f"
	Display    string
	Running    bool
	State      string
}

// Get returns a local VM's configuration.
func (c *Client) Get(ctx context.Context, name string) (VMConfig, error) {
	if err := checkName("get", name); err != nil {
		return VMConfig{}, err
	}
	out, err := c.exec(ctx, call{verb: "get", name: name, args: []string{"get", name, "--format", "json"}, timeout: queryTimeout})
	if err != nil {
		return VMConfig{}, err
	}
	cfg, err := parseGet(out)
	if err != nil {
		return VMConfig{}, fmt.Errorf("tart get %s: %w", name, err)
	}
	return cfg, nil
}

// parseGet parses `tart get --format json`, by field name.
func parseGet(out []byte) (VMConfig, error) {
	var raw struct {
		OS, DiskFormat, Display, State string
		CPU, Memory, Disk              flexInt
		Size                           flexString
		Running                        *bool
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return VMConfig{}, fmt.Errorf("parsing get JSON: %w", err)
	}
	cfg := VMConfig{
		OS: raw.OS, CPU: int(raw.CPU), Memory: int(raw.Memory), Disk: int(raw.Disk),
		DiskFormat: raw.DiskFormat, Size: string(raw.Size), Display: raw.Display,
		State: strings.ToLower(raw.State),
	}
	cfg.Running = raw.Running != nil && *raw.Running
	if cfg.State == "" {
		cfg.State = stateFromRunning(cfg.Running)
	} else if raw.Running == nil {
		cfg.Running = cfg.State == "running"
	}
	return cfg, nil
}

// OS returns a local VM's guest OS, "darwin" or "linux". A tart too old to
// report it is taken as darwin: counting an unknown VM against the two-macOS-VM
// limit is the safe mistake.
func (c *Client) OS(ctx context.Context, name string) (string, error) {
	cfg, err := c.Get(ctx, name)
	if err != nil {
		return "", err
	}
	if cfg.OS == "" {
		return "darwin", nil
	}
	return cfg.OS, nil
}

// Version returns `tart --version`, e.g. "2.32.1" (tart prints its release
// tag; "SNAPSHOT" when built from source).
func (c *Client) Version(ctx context.Context) (string, error) {
	out, err := c.exec(ctx, call{verb: "--version", args: []string{"--version"}, timeout: queryTimeout})
	if err != nil {
		return "", err
	}
	v := firstLine(out)
	if v == "" {
		return "", fmt.Errorf("tart --version: empty output")
	}
	return v, nil
}

// CheckVersion runs `tart --version` and returns what it printed, refusing a
// tart older than MinVersion with a *VersionError naming both versions. A
// build from source ("SNAPSHOT") is accepted with a warning: it cannot be
// placed.
func (c *Client) CheckVersion(ctx context.Context) (string, error) {
	raw, err := c.Version(ctx)
	if err != nil {
		return "", err
	}
	v, err := ParseVersion(raw)
	if err != nil {
		return raw, err
	}
	if v.Snapshot {
		c.log.Warn().Str("version", raw).Str("min", MinVersion.String()).
			Msg("tart is a build from source; cannot check it has every flag Tarty uses")
		return raw, nil
	}
	if v.Less(MinVersion) {
		return raw, &VersionError{Found: v, Min: MinVersion}
	}
	return raw, nil
}

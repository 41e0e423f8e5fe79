package tartvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// VM is one entry of `tart list --format json`.
type VM struct {
	Source     string    // "local" or "OCI"
	Name       string    // local name, or ghcr.io/org/img:tag / ...@sha256:...
	Disk       int       // GB
	Size       int       // allocated GB
	SizeOnDisk int       // tart before 2.31 only
	Accessed   time.Time // tart 2.31+ only; zero when absent
	Running    bool
	State      string // "running", "suspended" or "stopped"
}

// Local reports whether the entry is a local VM (not an OCI cache entry).
func (v VM) Local() bool { return strings.EqualFold(v.Source, "local") }

// List returns the local VMs (`tart list --source local --format json`).
func (c *Client) List(ctx context.Context) ([]VM, error) {
	return c.list(ctx, "local")
}

// ListOCI returns the cached OCI images (`tart list --source oci`), with
// their sizes: what a pull or a clone of them costs on disk is known.
func (c *Client) ListOCI(ctx context.Context) ([]VM, error) {
	return c.list(ctx, "oci")
}

// list runs `tart list`. tart fails (exit 1) when a VM directory disappears
// while it reads the sizes of its files (a delete or a clone's move racing
// it): one more try then sees a settled directory.
func (c *Client) list(ctx context.Context, source string) ([]VM, error) {
	args := []string{"list", "--source", source, "--format", "json"}
	out, err := c.exec(ctx, call{verb: "list", args: args, timeout: queryTimeout})
	if e, ok := asError(err); ok && e.ExitCode == 1 && e.ctxErr == nil && ctx.Err() == nil {
		c.log.Debug().Str("error", e.Stderr).Msg("tart list failed; trying once more")
		out, err = c.exec(ctx, call{verb: "list", args: args, timeout: queryTimeout})
	}
	if err != nil {
		return nil, err
	}
	vms, err := ParseList(out)
	if err != nil {
		return nil, fmt.Errorf("tart list: %w", err)
	}
	return vms, nil
}

// States maps every local VM name to its state: running, suspended or stopped.
func (c *Client) States(ctx context.Context) (map[string]string, error) {
	vms, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	states := make(map[string]string, len(vms))
	for _, vm := range vms {
		if vm.Local() {
			states[vm.Name] = vm.State
		}
	}
	return states, nil
}

// listEntry matches keys by name (encoding/json ignores key order and case),
// covering both the pre-2.31 field set (SizeOnDisk) and 2.31+ (Accessed).
type listEntry struct {
	Source     string
	Name       string
	Disk       flexInt
	Size       flexInt
	SizeOnDisk flexInt
	Accessed   string
	Running    *bool
	State      string
}

// ParseList parses `tart list --format json` output of any tart 2.x version.
// Missing State falls back to the Running flag.
func ParseList(data []byte) ([]VM, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil // no VMs and no JSON at all
	}
	var entries []listEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("parsing list JSON: %w", err)
	}
	vms := make([]VM, 0, len(entries))
	for _, e := range entries {
		if e.Name == "" {
			return nil, fmt.Errorf("parsing list JSON: entry without Name")
		}
		vm := VM{
			Source: e.Source, Name: e.Name,
			Disk: int(e.Disk), Size: int(e.Size), SizeOnDisk: int(e.SizeOnDisk),
			Running: e.Running != nil && *e.Running,
			State:   strings.ToLower(e.State),
		}
		if e.Accessed != "" {
			// Unparseable dates stay zero: the field is informational.
			vm.Accessed, _ = time.Parse(time.RFC3339Nano, e.Accessed)
		}
		if vm.State == "" {
			vm.State = stateFromRunning(vm.Running)
		} else if e.Running == nil {
			vm.Running = vm.State == "running"
		}
		vms = append(vms, vm)
	}
	return vms, nil
}

func stateFromRunning(running bool) string {
	if running {
		return "running"
	}
	return "stopped"
}

// flexInt accepts a JSON number (integer or not) or a numeric string, so a
// change of numeric type between tart versions does not break parsing.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*f = flexInt(n)
		return nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flexInt(x)
	return nil
}

// flexString accepts a JSON string or number (get's Size is a string, "%.3f").
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	*f = flexString(b)
	return nil
}

package tartvm

import (
	"fmt"
	"strconv"
	"strings"
)

// MinVersion is the oldest tart with every flag and output Tarty uses.
//
// From tart's tags (Sources/tart/Commands/*.swift): `set --random-mac` came
// last, in 2.10.0 (#809, May 2024); below it, 2.9.x lacks it and 2.6.0 to
// 2.9.1 have everything else. The rest is older: `run --no-audio` 2.6.0;
// get's OS field 2.8.0; `delete` refusing a running VM 2.5.0 (#676); list's
// State field 2.0.0; `list --format json` and `get --format json` 0.37.0;
// `stop --timeout` 0.34.0; `rename` and `--net-softnet` 0.28.0; `list
// --source`, `ip --wait` and `pull` 0.2.0.
var MinVersion = Version{Major: 2, Minor: 10, Patch: 0}

// Version is a tart release, as `tart --version` prints it.
type Version struct {
	Major, Minor, Patch int
	// Snapshot is a tart built from source, which prints "SNAPSHOT".
	Snapshot bool
}

func (v Version) String() string {
	if v.Snapshot {
		return "SNAPSHOT"
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less reports whether v is an older release than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// ParseVersion parses `tart --version` output: a release tag such as
// "2.32.1" (a leading "v" and a "-suffix" or "+suffix" are tolerated) or
// "SNAPSHOT".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if s == "SNAPSHOT" {
		return Version{Snapshot: true}, nil
	}
	core := strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(core, "-+ "); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("tart --version: cannot read version %q", s)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return Version{}, fmt.Errorf("tart --version: cannot read version %q", s)
		}
		n[i] = x
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2]}, nil
}

// VersionError is a tart older than Tarty needs.
type VersionError struct {
	Found, Min Version
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("tart %s is too old: Tarty needs tart %s or newer (set --random-mac came in %s); upgrade it: brew upgrade cirruslabs/cli/tart",
		e.Found, e.Min, e.Min)
}

// HostFix is the operator's fix, for tarty.HostFix.
func (e *VersionError) HostFix() string {
	return fmt.Sprintf("upgrade tart %s to %s or newer: brew upgrade cirruslabs/cli/tart", e.Found, e.Min)
}

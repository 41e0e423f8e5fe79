package tartvm

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// InternetSharingPlist holds the settings of macOS's DHCP server (bootpd),
// which gives tart's shared-NAT guests their addresses.
const InternetSharingPlist = "/Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist"

// DefaultDHCPLeaseTime is bootpd's lease time when the plist sets none: a
// day, so a host that starts a VM (with a fresh MAC address) for every job
// runs out of its ~253 addresses within a day and new VMs get no address.
const DefaultDHCPLeaseTime = 24 * time.Hour

// MaxDHCPLeaseTime is the longest lease Tarty considers safe (Orchard's
// worker warns above it too).
const MaxDHCPLeaseTime = time.Hour

// DHCPLeaseFix shortens the lease to 10 minutes, once per host (tart's FAQ).
// If VMs already get no address, `sudo rm /var/db/dhcpd_leases` too.
const DHCPLeaseFix = "sudo defaults write " + InternetSharingPlist + " bootpd -dict DHCPLeaseTimeSecs -int 600"

// CommandFunc runs a program and returns its combined output; a non-zero
// exit is an error (exec.Cmd.CombinedOutput does both).
type CommandFunc func(ctx context.Context, name string, args ...string) ([]byte, error)

// DHCPLeaseTime reads bootpd's DHCPLeaseTimeSecs with `defaults read
// <InternetSharingPlist> bootpd` (macOS only). set is false when the plist,
// its bootpd dictionary or the key is missing: bootpd then leases for
// DefaultDHCPLeaseTime.
func DHCPLeaseTime(ctx context.Context, run CommandFunc) (lease time.Duration, set bool, err error) {
	out, err := run(ctx, "defaults", "read", InternetSharingPlist, "bootpd")
	if err != nil {
		// `defaults` exits 1 with "The domain/default pair of (..., bootpd)
		// does not exist" when the file or the dictionary is missing.
		if strings.Contains(string(out), "does not exist") {
			return DefaultDHCPLeaseTime, false, nil
		}
		return 0, false, fmt.Errorf("defaults read %s bootpd: %w: %s", InternetSharingPlist, err, strings.TrimSpace(string(out)))
	}
	return ParseDHCPLeaseTime(string(out))
}

var leaseRE = regexp.MustCompile(`(?m)^\s*"?DHCPLeaseTimeSecs"?\s*=\s*"?([^";\s]*)"?\s*;`)

// ParseDHCPLeaseTime reads the output of `defaults read <plist> bootpd`, an
// old-style property list such as
//
//	{
//	    DHCPLeaseTimeSecs = 600;
//	}
//
// set is false when the dictionary has no DHCPLeaseTimeSecs.
func ParseDHCPLeaseTime(out string) (lease time.Duration, set bool, err error) {
	m := leaseRE.FindStringSubmatch(out)
	if m == nil {
		return DefaultDHCPLeaseTime, false, nil
	}
	secs, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || secs <= 0 {
		return 0, true, fmt.Errorf("bootpd DHCPLeaseTimeSecs %q is not a positive number of seconds", m[1])
	}
	return time.Duration(secs) * time.Second, true, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tartyci/tarty/config"
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/tartvm"
)

// doctorChecks is every check, in the order they run and print.
func doctorChecks() []doctorCheck {
	return []doctorCheck{
		{id: "tart", title: "tart", local: true, run: checkTart},
		{id: "root", title: "not root", run: checkNotRoot},
		{id: "home", title: "HOME and TART_HOME", run: checkHome},
		{id: "runner-image", title: "runner image", local: true, needs: []string{"tart"}, run: checkRunnerImage},
		{id: "base-image", title: "base image", local: true, needs: []string{"tart"}, run: checkBaseImage},
		{id: "dhcp", title: "DHCP lease time", macOS: true, local: true, run: checkDHCPLease},
		{id: "disk", title: "free disk", local: true, needs: []string{"runner-image"}, run: checkDisk},
		{id: "softnet", title: "softnet", macOS: true, local: true, run: checkSoftnet},
		{id: "orchard", title: "Orchard controller", fleet: true, run: checkOrchardController},
		{id: "orchard-roles", title: "Orchard roles", fleet: true, needs: []string{"orchard"}, run: checkOrchardRoles},
		{id: "orchard-workers", title: "Orchard workers", fleet: true, needs: []string{"orchard"}, run: checkOrchardWorkers},
		{id: "github", title: "GitHub access", run: checkGitHub},
		{id: "jit", title: "GitHub runners", needs: []string{"github"}, run: checkJIT},
		{id: "group", title: "runner group", needs: []string{"github"}, run: checkRunnerGroup},
		{id: "runner-version", title: "actions runner", needs: []string{"github"}, run: checkRunnerVersion},
		{id: "redelivery", title: "webhook redelivery", needs: []string{"github"}, run: checkRedelivery},
		{id: "webhook-secret", title: "webhook secret", run: checkWebhookSecret},
		{id: "admin", title: "admin listener", run: checkAdmin},
		{id: "ssh", title: "SSH into a clone", local: true, needs: []string{"tart", "runner-image"}, timeout: -1, run: checkSSH},
	}
}

const installTart = "install tart (brew install cirruslabs/cli/tart) or set tart.path to it: launchd's PATH has no /opt/homebrew/bin"

func checkTart(ctx context.Context, e *doctorEnv) checkResult {
	path, err := e.lookPath(e.cfg.Tart.Path)
	if err != nil {
		return checkFail(installTart, "tart.path %q not found: %v", e.cfg.Tart.Path, err)
	}
	raw, err := e.tart.CheckVersion(ctx)
	var ve *tartvm.VersionError
	switch {
	case errors.As(err, &ve):
		return checkFail(ve.HostFix(), "%s is tart %s; Tarty needs %s or newer", path, ve.Found, tartvm.MinVersion)
	case err != nil:
		return checkFailErr(err, "check that `"+path+" --version` runs for this user", "%s --version", path)
	}
	if v, err := tartvm.ParseVersion(raw); err == nil && v.Snapshot {
		return checkWarn("install a release: brew install cirruslabs/cli/tart",
			"%s is a build from source (SNAPSHOT): cannot check it is %s or newer", path, tartvm.MinVersion)
	}
	return checkPass("%s, version %s (Tarty needs %s or newer)", path, raw, tartvm.MinVersion)
}

func checkNotRoot(_ context.Context, e *doctorEnv) checkResult {
	if e.uid == 0 {
		return checkFail("run Tarty as the GUI user that logs in automatically, never with sudo (deploy/README.md)",
			"running as root: Virtualization.framework refuses to start macOS guests for root, and files root leaves in ~/.tart break tart for the user")
	}
	return checkPass("running as uid %d", e.uid)
}

const setHome = "set HOME and TART_HOME in the LaunchAgent's EnvironmentVariables (deploy/com.tartyci.tarty.plist), or tart.home in the config"

func checkHome(_ context.Context, e *doctorEnv) checkResult {
	home := e.getenv("HOME")
	tartHome, from := e.cfg.Tart.Home, "tart.home"
	if tartHome == "" {
		tartHome, from = e.getenv("TART_HOME"), "TART_HOME"
	}
	if tartHome == "" && home != "" {
		tartHome, from = filepath.Join(home, ".tart"), "$HOME/.tart"
	}
	switch {
	case tartHome == "":
		return checkFail(setHome, "neither HOME nor TART_HOME is set (launchd gives a daemon no HOME): tart cannot find its VMs")
	case e.cfg.Backend == config.BackendOrchard:
		if home == "" {
			return checkWarn(setHome, "HOME is not set (launchd gives a daemon none): ssh's default keys are not found")
		}
		return checkPass("HOME %s", home)
	}
	if r := usableDir(tartHome, e.uid); r != nil {
		return *r
	}
	if home == "" {
		return checkWarn(setHome, "HOME is not set (launchd gives a daemon none): tart uses %s (%s), but ssh's default keys and tart's registry login are not found", tartHome, from)
	}
	return checkPass("HOME %s; TART_HOME %s (%s)", home, tartHome, from)
}

// usableDir checks that tart can keep its VMs in dir: a directory this user
// can write to, or one tart can create. nil means usable.
func usableDir(dir string, uid int) *checkResult {
	chown := fmt.Sprintf("sudo chown -R %d %s (tart run once as root leaves root-owned files)", uid, dir)
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
				break
			}
			parent = filepath.Dir(parent)
		}
		if err := dirWritable(parent); err != nil {
			r := checkFail("create it: mkdir -p "+dir, "TART_HOME %s does not exist and cannot be created: %v", dir, err)
			return &r
		}
		return nil // tart creates it
	}
	if err != nil {
		r := checkFail(chown, "TART_HOME %s: %v", dir, err)
		return &r
	}
	if !fi.IsDir() {
		r := checkFail("set tart.home to a directory", "TART_HOME %s is not a directory", dir)
		return &r
	}
	if err := dirWritable(dir); err != nil {
		r := checkFail(chown, "TART_HOME %s is not writable: %v", dir, err)
		return &r
	}
	return nil
}

// dirWritable creates and removes a file in dir.
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".tarty-doctor-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func checkRunnerImage(ctx context.Context, e *doctorEnv) checkResult {
	runner, base := e.cfg.Images.Runner, e.cfg.Images.Base
	ok, err := e.images.Exists(ctx, runner)
	if err != nil {
		return checkFailErr(err, "check that `tart list` works for this user", "images.runner %q", runner)
	}
	if !ok {
		return checkFail(fmt.Sprintf("make it from the base image: tart clone %s %s", base, runner),
			"images.runner %q is not a local tart image", runner)
	}
	size, err := e.images.SizeBytes(ctx, runner)
	if err != nil {
		return checkPass("%q exists", runner)
	}
	return checkPass("%q exists (%s)", runner, gigabytes(size))
}

func checkBaseImage(ctx context.Context, e *doctorEnv) checkResult {
	base := e.cfg.Images.Base
	if base == "" {
		return checkSkip("no images.base")
	}
	ok, err := e.images.Exists(ctx, base)
	if err != nil {
		return checkFailErr(err, "check that `tart list` works for this user", "images.base %q", base)
	}
	switch {
	case ok && e.images.Remote(base):
		return checkPass("OCI image %q is pulled", base)
	case ok:
		return checkPass("%q exists", base)
	case e.images.Remote(base):
		return checkWarn("pull it now: tart pull "+base,
			"OCI image %q is not pulled yet: the first rebuild pulls it (a macOS image can take an hour)", base)
	case !e.cfg.Rebuild.Enabled:
		return checkWarn("create it, or set images.base to an OCI image such as ghcr.io/cirruslabs/macos-sequoia-base:latest",
			"images.base %q is not a local tart image (rebuild.enabled is false: only `tarty rebuild` needs it)", base)
	}
	return checkFail("create it, or set images.base to an OCI image such as ghcr.io/cirruslabs/macos-sequoia-base:latest",
		"images.base %q is not a local tart image: the nightly rebuild would fail", base)
}

func checkDHCPLease(ctx context.Context, e *doctorEnv) checkResult {
	fix := tartvm.DHCPLeaseFix + " (and sudo rm /var/db/dhcpd_leases if VMs already get no address)"
	lease, set, err := tartvm.DHCPLeaseTime(ctx, e.command)
	switch {
	case err != nil:
		return checkWarn(fix, "cannot read bootpd's lease time: %s", oneLineErr(err))
	case !set:
		return checkWarn(fix, "bootpd has no DHCPLeaseTimeSecs: it leases each VM's address for %d s, so after ~250 VMs in a day new VMs get no address",
			int(tartvm.DefaultDHCPLeaseTime.Seconds()))
	case lease > tartvm.MaxDHCPLeaseTime:
		return checkWarn(fix, "bootpd leases addresses for %d s (more than %d s): every VM has a new MAC address, so the pool can run out",
			int(lease.Seconds()), int(tartvm.MaxDHCPLeaseTime.Seconds()))
	}
	return checkPass("bootpd leases addresses for %d s", int(lease.Seconds()))
}

func checkDisk(ctx context.Context, e *doctorEnv) checkResult {
	runner := e.cfg.Images.Runner
	free, err := e.tart.FreeDisk()
	if err != nil {
		return checkFailErr(err, "set tart.home to a directory on a volume with room for the images", "free disk")
	}
	size, err := e.images.SizeBytes(ctx, runner)
	if err != nil {
		return checkFailErr(err, "check that `tart list` works for this user", "size of %q", runner)
	}
	fix := "free space on the volume of TART_HOME (tart's OCI cache: tart prune --entries caches --older-than 7)"
	need := scheduler.RebuildDiskNeeded(size)
	switch {
	case free < need:
		return checkFail(fix, "%s free; a clone of %q can grow to %s and %s are kept spare: the nightly rebuild refuses to start",
			gigabytes(free), runner, gigabytes(size), gigabytes(need-size))
	case free < size+need:
		return checkWarn(fix, "%s free; a runner and the rebuild beside it can each grow to %s (%q), with %s kept spare",
			gigabytes(free), gigabytes(size), runner, gigabytes(need-size))
	}
	return checkPass("%s free; a clone of %q can grow to %s", gigabytes(free), runner, gigabytes(size))
}

func gigabytes(n uint64) string { return fmt.Sprintf("%.1f GB", float64(n)/1e9) }

func checkSoftnet(_ context.Context, e *doctorEnv) checkResult {
	if !e.cfg.Runners.Softnet {
		return checkSkip("runners.softnet is off")
	}
	const install = "brew install cirruslabs/cli/softnet (or set runners.softnet: false)"
	var candidates []string
	if p, err := e.lookPath("softnet"); err == nil {
		candidates = append(candidates, p)
	}
	if t, err := e.lookPath(e.cfg.Tart.Path); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(t), "softnet"))
	}
	for _, p := range candidates {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		if fi.Mode()&os.ModeSetuid == 0 {
			return checkWarn(fmt.Sprintf("sudo chown root %s && sudo chmod u+s %s", p, p),
				"%s is not setuid root: tart would ask for sudo to fix it, which a daemon cannot answer", p)
		}
		return checkPass("%s (setuid)", p)
	}
	return checkFail(install, "runners.softnet is on but softnet is not installed (not in PATH nor beside tart): every VM would fail to boot")
}

func checkWebhookSecret(_ context.Context, e *doctorEnv) checkResult {
	s := e.cfg.GitHub.WebhookSecret
	switch {
	case !s.IsSet():
		return checkFail("set TARTY_WEBHOOK_SECRET, github.webhook_secret_file or github.webhook_secret to the webhook's secret",
			"not set: every delivery would be refused")
	case len(strings.TrimSpace(s.Reveal())) < 16:
		return checkWarn("use a long random secret (openssl rand -hex 32) in GitHub's webhook settings and in Tarty",
			"set (not shown), but shorter than 16 characters")
	}
	return checkPass("set (not shown)")
}

func checkAdmin(ctx context.Context, e *doctorEnv) checkResult {
	addr := e.cfg.Server.AdminListen
	up, err := e.daemon(ctx)
	switch {
	case up:
		return checkInfo("a Tarty daemon answers on %s (tarty status shows what it does)", addr)
	case errors.Is(err, errNoDaemon):
		return checkInfo("no daemon answers on %s (tarty run listens there)", addr)
	}
	return checkWarn("stop what listens on "+addr+", or set server.admin_listen to a free loopback port",
		"something that is not Tarty answers on %s: %s", addr, oneLineErr(err))
}

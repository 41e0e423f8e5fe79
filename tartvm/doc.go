// Package tartvm drives the tart CLI (https://tart.run) for Tarty: clone, set,
// run, ip, stop, delete, rename, list, get, pull and --version, each through
// one exec function bounded by a context and a per-verb default timeout.
//
// Each call runs in its own process group. Cancelling it sends SIGINT to the
// group (tart cancels its task and cleans up: a clone removes its half-made
// copy, which SIGKILL would leave), and SIGKILL to the whole group after
// Options.KillGrace or once tart has exited, so no child outlives the call.
//
// Failures are *Error values carrying the verb, the VM name (never secrets:
// nothing secret is ever passed to tart), tart's exit code and the line of its
// output that explains the failure. Callers branch on them with methods or the
// package functions of the same names, which look through wrapping: NotFound,
// NotRunning, AlreadyRunning, VMLimit, NoIP, NotInstalled, and for tart's races
// on a real Mac (tart 2.32.1, see the reference notes) VMRunning (a delete just
// after a forced stop), IPRetryable (no lease yet, a lease file mid-rewrite),
// GuestCrashed (tart exits 0 after a guest crash; the run log tells),
// MissingFiles, and HostFix, a one-line fix for Virtualization.framework
// refusing to start (tart as root, no GUI session, locked keychain). The
// scheduler finds VMLimit() and HostFix() through package tarty, without
// importing this one. CheckVersion refuses a tart older than MinVersion.
//
// Start (and Run, its channel form) starts `tart run` detached in its own
// session so that a Tarty restart does not kill the VM; its output is appended
// to <LogDir>/<name>.log (directory 0700, file 0600, never through a symlink).
//
// Backend is the scheduler's VM backend for local tart: capacity from the
// foreign macOS VMs running, create (clone and set, cleaned up on failure),
// boot, address, stop and delete, each handling tart's races.
//
// Tests run the client against a fake tart executable that behaves like tart
// 2.32: see the faketart package and faketart/tarttest, which builds it once per
// test binary and seeds images, faults and VM power-offs under a temporary
// TART_HOME.
package tartvm

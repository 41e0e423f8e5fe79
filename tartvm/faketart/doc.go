// Package faketart is a fake `tart` that behaves like tart 2.32.1 for the verbs
// Tarty uses (clone, set, run, ip, stop, delete, rename, list, get, pull,
// --version), with tart's messages, exit codes (2 for a missing, not running or
// already running VM; 1 for other runtime errors, printed bare, and for other
// Swift errors, printed after "Error: "; 64 with `Error: ...` and the usage for
// validation errors) and JSON field names and layout.
//
// Interface. Main(args, getenv, stdout, stderr) holds all the logic; the
// executable is cmd/tart, and tarttest.Build compiles it once per test binary.
// Main uses no global state and reads the environment only through getenv, so
// tests of any module may call it in-process; `run`, hung verbs and slow pulls
// install a SIGINT handler and need their own process (the executable).
//
// State lives under TART_HOME, which must be set (vms/<name>/config.json, sparse
// disk.img, nvram.bin; cache/OCIs/<host>/<path>/<tag> for OCI images). A
// directory without all three files is tart's "VM is missing some of its
// files" (exit 1) and is left out of `list` (RemoveDisk makes one). A VM is
// running while its `tart run` process holds an fcntl lock on its config.json,
// exactly as tart decides it.
//
// Locks, as in tart: clone's copy and move and run's set-up take a flock on
// TART_HOME; delete and rename take none (clone opens its source before
// locking, so a rename or delete meanwhile breaks it, as it breaks tart's).
//
// `run` goes through tart's phases: under the global lock, the MAC check and
// the VM set-up (Config.LockDelayMS), during which the VM does not look running,
// `tart stop` says "not running" and a SIGINT is lost; then the VM lock; then
// Virtualization.framework's start (Config.StartDelayMS), at whose end come the
// two-VM limit (`The number of VMs exceeds the system limit (other running VMs:
// ...)`, exit 1; only booted macOS VMs count, plus Config.LeakedVMs slots of a
// leaked host counter; Linux VMs do not count) and a Fault.Fail start failure
// (VZStartFailed is tart's text for a host that cannot start VMs). It then
// blocks until `tart stop` (SIGINT: prints "Stopping VM...", exit 0), the guest
// powers off (PowerOff creates vms/<name>/poweroff, polled every 50 ms: prints
// "guest has stopped the virtual machine", exit 0) or a DieAfterMS fault (prints
// "guest has stopped the virtual machine due to error: ...", exit 0 too).
// `--net-softnet` is accepted.
//
// `ip --wait N` answers from DHCP leases like tart: a running VM gets a lease
// (Config.IP, default 127.0.0.1, so SSH simulators can listen on loopback)
// once it has been up for the boot delay (default 200 ms), and `ip` answers any
// unexpired lease for the VM's MAC address, also after the VM stopped (a stale
// lease; Config.LeaseSeconds, default 86400). TruncatedLeases is tart's text
// for a lease file caught mid-rewrite.
//
// `pull` and a clone of an OCI image not in the cache fetch it from a fake
// registry (SeedRemote), printing tart's progress lines; an image in no
// registry fails with the registry's 404. SeedOCI puts an image straight in the
// cache.
//
// Faults come from $TART_HOME/faketart.json (Config, WriteConfig), read on
// every call, matched per verb and VM-name prefix (pull: the reference),
// optionally only Times times: fail with a message and exit code, hang until
// killed or interrupted (optionally leaving a child that ignores SIGINT in the
// process group), never get an IP, die after N ms, ignore SIGINT (so `tart
// stop` escalates to SIGKILL), another boot delay or IP, a slow pull. `set`
// enforces the image's minimum CPU and memory with tart's
// LessThanMinimalResourcesError.
//
// Every invocation appends one JSON line (Call: args, start time, exit code,
// pid, whether SIGINT ended it) to $TART_HOME/faketart-calls.jsonl
// (ReadCalls); `run` logs when it exits and a hanging call when it starts
// hanging. Long-lived fake processes (and the children of hung verbs) register
// under $TART_HOME/faketart-procs so LiveProcs can tell what is left and
// KillAll can end them at test cleanup; a running fake VM also exits by itself
// once its TART_HOME is removed.
package faketart

// Package faketart is a fake `tart` that behaves like tart 2.32.1 for the verbs
// Tarty uses (clone, set, run, ip, stop, delete, rename, list, get, --version),
// with tart's messages, exit codes (2 for a missing, not running or already
// running VM; 1 for other runtime errors; 64 with `Error: ...` and the usage for
// validation errors) and JSON field names and layout.
//
// Interface. Main(args, getenv, stdout, stderr) holds all the logic; the
// executable is cmd/tart, and tarttest.Build compiles it once per test binary.
// State lives under TART_HOME, which must be set (vms/<name>/config.json, sparse disk.img,
// nvram.bin; cache/OCIs/<host>/<path>/<tag> for OCI images). A VM is running
// while its `tart run` process holds an fcntl lock on its config.json, exactly
// as tart decides it; run's start phase (MAC check, VM lock, two-VM limit) is
// serialised by a flock on TART_HOME, so of two racing runs at most the allowed
// number of macOS VMs boot and the next gets `The number of VMs exceeds the
// system limit (other running VMs: ...)` with exit 1; linux VMs do not count.
// `run` blocks until `tart stop` (SIGINT: prints "Stopping VM...", exit 0), the
// guest powers off (PowerOff creates vms/<name>/poweroff, polled every 50 ms:
// prints "guest has stopped the virtual machine", exit 0) or a DieAfterMS fault
// (prints "guest has stopped the virtual machine due to error: ...", exit 0).
// `ip --wait N` prints Config.IP (default 127.0.0.1, so SSH simulators can
// listen on loopback) once the run has been up for the boot delay (default
// 200 ms). Faults come from $TART_HOME/faketart.json (Config, WriteConfig),
// read on every call, matched per verb and VM-name prefix, optionally only
// Times times: fail with a message and exit code, hang until killed, never get
// an IP, die after N ms, ignore `tart stop`'s SIGINT (so it escalates to
// SIGKILL), another boot delay or IP, and a lower VM limit to simulate foreign
// VMs. Every invocation appends one JSON line (Call: args,
// start time, exit code, pid) to $TART_HOME/faketart-calls.jsonl (ReadCalls);
// `run` logs when it exits and a hanging call when it starts hanging. Long-lived
// fake processes register under $TART_HOME/faketart-procs so KillAll can end
// them at test cleanup; a running fake VM also exits by itself once its
// TART_HOME is removed. The fake never pulls: clone copies local VMs and OCI
// images seeded with SeedOCI only.
package faketart

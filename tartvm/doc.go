// Package tartvm drives the tart CLI (https://tart.run) for Tarty: clone, set,
// run, ip, stop, delete, rename, list and get, each through one exec function
// bounded by a context and a per-verb default timeout.
//
// Failures are *Error values carrying the verb, the VM name (never secrets:
// nothing secret is ever passed to tart), tart's exit code and the first useful
// line of its output. Callers branch on them with the methods NotFound,
// NotRunning, AlreadyRunning, VMLimit, NoIP and NotInstalled, or the package
// functions of the same names that look through wrapping. The scheduler detects
// the two-VM limit through the VMLimit() bool method without importing this
// package.
//
// Run starts `tart run` detached in its own session so that a Tarty restart does
// not kill the VM; its output is appended to <LogDir>/<name>.log and its exit is
// reported once on a channel.
//
// Tests run the client against a fake tart executable that behaves like tart
// 2.32: see the faketart package and faketart/tarttest, which builds it once per
// test binary and seeds images, faults and VM power-offs under a temporary
// TART_HOME.
package tartvm

//go:build unix

package tartvm

import "syscall"

// detachedAttr puts `tart run` in a new session (and so a new process group):
// launchd and terminals signal Tarty's group, which must not stop the VMs.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

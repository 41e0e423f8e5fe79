//go:build unix

package tartvm

import (
	"os"
	"syscall"
)

// detachedAttr puts `tart run` in a new session (and so a new process group):
// launchd and terminals signal Tarty's group, which must not stop the VMs.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// groupAttr gives a short tart call its own process group, so cancelling it
// reaches every process it started and nothing else.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// interruptGroup sends SIGINT to process group pgid: tart cancels its task
// and cleans up (a clone removes its temporary copy).
func interruptGroup(pgid int) { syscall.Kill(-pgid, syscall.SIGINT) }

// killGroup sends SIGKILL to process group pgid. A group whose processes are
// all gone is not an error.
func killGroup(pgid int) { syscall.Kill(-pgid, syscall.SIGKILL) }

// noFollow makes an open fail on a symbolic link in the last path component.
const noFollow = syscall.O_NOFOLLOW

// interrupt sends SIGINT to p, as `tart stop` does.
func interrupt(p *os.Process) error { return p.Signal(os.Interrupt) }

//go:build !unix

package tartvm

import (
	"os"
	"syscall"
)

// tart only runs on macOS; these let the package build elsewhere.

func detachedAttr() *syscall.SysProcAttr { return nil }
func groupAttr() *syscall.SysProcAttr    { return nil }
func interruptGroup(pgid int)            {}
func killGroup(pgid int) {
	if p, err := os.FindProcess(pgid); err == nil {
		p.Kill()
	}
}

const noFollow = 0

func interrupt(p *os.Process) error { return p.Kill() }

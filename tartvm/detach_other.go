//go:build !unix

package tartvm

import "syscall"

// detachedAttr is a no-op where sessions do not exist; tart only runs on macOS.
func detachedAttr() *syscall.SysProcAttr { return nil }

//go:build !unix

package sshexec

// lockFile is a no-op where flock(2) does not exist; Tarty runs on macOS and
// its tests on Linux, so only the in-process mutex guards the store here.
func lockFile(path string) (unlock func(), err error) { return func() {}, nil }

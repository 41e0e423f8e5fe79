package faketart

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// Locking mirrors tart's: a global flock(2) on $TART_HOME serialises clone's
// move and run's start (and here also delete, rename and the VM-limit check),
// and a running VM is one whose vms/<name>/config.json carries an fcntl write
// lock, held by its `tart run` process for its whole life. The kernel drops both
// locks when the process dies, so no state can go stale.
//
// fcntl locks vanish when the holder closes *any* descriptor of the file, so a
// `run` process never opens its own config.json after locking it.

// lockPath takes an exclusive flock on path (a file or a directory), blocking.
func lockPath(path string, flags int) (unlock func(), err error) {
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// lockHome takes tart's global lock on $TART_HOME.
func lockHome(home string) (func(), error) { return lockPath(home, os.O_RDONLY) }

// lockFile takes a flock on a lock file, creating it.
func lockFile(path string) (func(), error) { return lockPath(path, os.O_RDWR|os.O_CREATE) }

// lockHolder returns the pid holding the fcntl write lock on config (0: none),
// like tart's PIDLock.pid().
func lockHolder(config string) (int, error) {
	f, err := os.Open(config)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, &os.PathError{Op: "fcntl F_GETLK", Path: config, Err: err}
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}

// tryLockVM takes the fcntl write lock on config without waiting. The returned
// file must stay open for as long as the VM "runs".
func tryLockVM(config string) (*os.File, bool, error) {
	f, err := os.OpenFile(config, os.O_RDWR, 0)
	if err != nil {
		return nil, false, err
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	err = syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	if err == syscall.EAGAIN || err == syscall.EACCES {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, &os.PathError{Op: "fcntl F_SETLK", Path: config, Err: err}
	}
	return f, true, nil
}

// registerProc records a long-lived fake process (run, or a hung verb) as
// $TART_HOME/faketart-procs/<pid>, flock'd for its lifetime, so KillAll can find
// it and know for sure that the pid is still that process. The file is locked
// before it gets its final name, so KillAll never mistakes it for stale.
func registerProc(home string) (release func(), err error) {
	dir := filepath.Join(home, procsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".new-*")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	final := filepath.Join(dir, strconv.Itoa(os.Getpid()))
	if err := os.Rename(f.Name(), final); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return func() {
		os.Remove(final)
		f.Close()
	}, nil
}

// spawnChild starts a child in this process's group that ignores SIGINT and
// lives until it is killed or TART_HOME goes. It is registered like a fake
// process: the flock'd file is handed to it as fd 3 (and inherited by its own
// children), so it stays locked exactly as long as one of them lives.
func spawnChild(home string) error {
	dir := filepath.Join(home, procsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".new-*")
	if err != nil {
		return err
	}
	defer f.Close() // the child keeps its own descriptor, and so the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		os.Remove(f.Name())
		return err
	}
	// An ignored signal stays ignored across exec, in sleep too.
	cmd := exec.Command("/bin/sh", "-c", `trap "" INT; while [ -d "$1" ]; do sleep 1; done`, "faketart-child", home)
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(cmd.Process.Pid))); err != nil {
		return err
	}
	return cmd.Process.Release() // reaped by init once this process is gone
}

// procAlive reports whether the process registered in path still holds its
// lock; a stale file is removed.
func procAlive(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	os.Remove(path)
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

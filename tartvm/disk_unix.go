//go:build unix

package tartvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// freeBytes is the space an unprivileged user may still use on the file
// system holding path.
func freeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	// Field types differ between darwin and linux; both fit in uint64.
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

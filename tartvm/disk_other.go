//go:build !unix

package tartvm

import "errors"

func freeBytes(path string) (uint64, error) {
	return 0, errors.New("free disk space: not supported on this system")
}

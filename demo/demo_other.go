//go:build !unix

package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
)

var errUnix = errors.New("tarty demo runs on Linux and macOS: its simulated guest needs a POSIX sh")

// Run reports that the demo needs a Unix system.
func Run(context.Context, Options) error { return errUnix }

// FakeTart is not available here.
func FakeTart(_ []string, _ func(string) string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, errUnix)
	return 1
}

// FakeRunner is not available here.
func FakeRunner(_ []string, _ func(string) string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, errUnix)
	return 1
}

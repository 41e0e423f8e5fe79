//go:build unix

package demo

import (
	"io"

	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
	"github.com/tartyci/tarty/tartvm/faketart"
)

// FakeTart runs one invocation of the fake tart (package faketart) and
// returns its exit code: what the tarty binary does under EnvFakeTart.
func FakeTart(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return faketart.Main(args, getenv, stdout, stderr)
}

// FakeRunner runs the fake runner (package fakerunner) and returns its exit
// code: what the tarty binary does under EnvFakeRunner, as the guest's run.sh.
func FakeRunner(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return fakerunner.Main(args, getenv, stdout, stderr)
}

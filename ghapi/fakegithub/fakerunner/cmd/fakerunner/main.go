// Command fakerunner stands in for the GitHub Actions runner's run.sh against
// the fake GitHub; see package fakerunner.
package main

import (
	"os"

	"github.com/tartyci/tarty/ghapi/fakegithub/fakerunner"
)

func main() {
	os.Exit(fakerunner.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

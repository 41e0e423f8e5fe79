// Command tart is the fake tart executable used by Tarty's tests; see package faketart.
package main

import (
	"os"

	"github.com/tartyci/tarty/tartvm/faketart"
)

func main() {
	os.Exit(faketart.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

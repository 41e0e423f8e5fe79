// Command tarty serves GitHub Actions jobs with ephemeral macOS VMs made by tart.
// main only wires the process to run, which holds everything testable.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // the first signal stops gracefully
		<-sigs
		fmt.Fprintln(os.Stderr, "tarty: second signal: exiting at once")
		os.Exit(exitFailure)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

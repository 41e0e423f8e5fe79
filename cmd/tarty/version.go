package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at build time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234".
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit, from -ldflags or else from the
// module and VCS information Go embeds in the binary.
func buildVersion() (ver, rev string) {
	ver, rev = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && rev == "" {
				rev = s.Value
			}
			if s.Key == "vcs.modified" && s.Value == "true" && rev != "" && commit == "" {
				rev += "-dirty"
			}
		}
	}
	if ver == "" {
		ver = "dev"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev
}

func cmdVersion(_ context.Context, inv *invocation) int {
	ver, rev := buildVersion()
	fmt.Fprintf(inv.stdout, "tarty %s (commit %s, %s, %s/%s)\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

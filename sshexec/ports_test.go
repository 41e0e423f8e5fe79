package sshexec_test

import (
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/sshexec"
)

// Both clients are one type, so one assertion per port covers them.
var (
	_ scheduler.Guest    = (*sshexec.Client)(nil)
	_ scheduler.HostKeys = (*sshexec.Client)(nil)
)

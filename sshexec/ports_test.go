package sshexec_test

import (
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/sshexec"
)

// Both clients are one type, so one assertion covers them.
var _ scheduler.Guest = (*sshexec.Client)(nil)

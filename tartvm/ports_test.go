package tartvm_test

import (
	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/tartvm"
)

// The local-tart adapters satisfy the scheduler's ports without importing it.
var (
	_ scheduler.Backend = (*tartvm.Backend)(nil)
	_ scheduler.Images  = (*tartvm.Images)(nil)
)

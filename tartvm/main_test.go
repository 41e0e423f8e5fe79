package tartvm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart/tarttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	tarttest.Cleanup()
	os.Exit(code)
}

// newClient returns a client on a fresh fake tart home.
func newClient(t *testing.T, opts ...func(*tartvm.Options)) (*tartvm.Client, *tarttest.Env) {
	t.Helper()
	env := tarttest.New(t)
	// A short grace keeps tests quick; tests of the default set 0 themselves.
	o := tartvm.Options{Path: env.Bin, Home: env.Home, LogDir: t.TempDir(), StartGrace: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	return tartvm.New(o), env
}

// noGrace makes Run hand back the channel at once, so every exit comes on it.
func noGrace(o *tartvm.Options) { o.StartGrace = -1 }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newEnv is a fake tart home without a client.
func newEnv(t *testing.T) *tarttest.Env { return tarttest.New(t) }

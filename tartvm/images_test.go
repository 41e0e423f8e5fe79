package tartvm_test

import (
	"bytes"
	"testing"

	"github.com/tartyci/tarty/tartvm"
	"github.com/tartyci/tarty/tartvm/faketart"
)

func TestImages(t *testing.T) {
	t.Parallel()
	c, env := newClient(t)
	ctx := testCtx(t)
	im := tartvm.NewImages(c)
	const base = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
	env.Seed("runner", faketart.VMOptions{DiskGB: 60})
	env.Seed("broken", faketart.VMOptions{})
	env.RemoveDisk("broken")
	env.SeedRemote(base, faketart.VMOptions{DiskGB: 50})

	for name, want := range map[string]bool{"runner": true, "broken": false, "nope": false, base: false} {
		if ok, err := im.Exists(ctx, name); err != nil || ok != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", name, ok, err, want)
		}
	}
	if !im.Remote(base) || im.Remote("runner") {
		t.Error("Remote")
	}
	if n, err := im.SizeBytes(ctx, "runner"); err != nil || n != 60_000_000_000 {
		t.Errorf("SizeBytes(runner) = %d, %v", n, err)
	}
	if _, err := im.SizeBytes(ctx, base); err == nil {
		t.Error("SizeBytes of an image not pulled = nil error")
	}

	var progress bytes.Buffer
	if changed, err := im.Pull(ctx, base, &progress); err != nil || !changed || !bytes.Contains(progress.Bytes(), []byte("100%")) {
		t.Fatalf("first Pull = %v, %v\n%s", changed, err, progress.String())
	}
	if n, err := im.SizeBytes(ctx, base); err != nil || n != 50_000_000_000 {
		t.Errorf("SizeBytes(%s) = %d, %v", base, n, err)
	}
	if changed, err := im.Pull(ctx, base, nil); err != nil || changed {
		t.Errorf("Pull of an unchanged tag = %v, %v", changed, err)
	}
	env.SeedRemote(base, faketart.VMOptions{DiskGB: 55}) // the tag moved
	if changed, err := im.Pull(ctx, base, nil); err != nil || !changed {
		t.Errorf("Pull of a moved tag = %v, %v", changed, err)
	}
	if changed, err := im.Pull(ctx, "runner", nil); err != nil || changed {
		t.Errorf("Pull of a local image = %v, %v", changed, err)
	}

	if err := im.Rename(ctx, "runner", "runner-previous"); err != nil {
		t.Fatal(err)
	}
	if err := im.Delete(ctx, "runner-previous"); err != nil {
		t.Fatal(err)
	}
	if err := im.Delete(ctx, "runner-previous"); err != nil {
		t.Errorf("Delete of a missing image = %v", err)
	}
	if free, err := im.FreeBytes(ctx); err != nil || free == 0 {
		t.Errorf("FreeBytes = %d, %v", free, err)
	}
}

package faketart

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

// pull fetches an OCI image into the cache from the fake registry, printing
// tart's progress lines on stdout.
func (t *tart) pull(p parsed) int {
	if _, err := p.intFlag(cmdPull, "concurrency", 4, 1, math.MaxInt32); err != nil {
		return t.usage(cmdPull, err)
	}
	ref := p.args[0]
	if d, ok := localDir(t.home, ref); ok && d.initialized() {
		fmt.Fprintf(t.stdout, "%q is a local image, nothing to pull here!\n", ref)
		return 0
	}
	d, ok := ociDir(t.home, ref)
	if !ok {
		return t.runtimeErr(1, "failed to parse remote name: %s", ref)
	}
	fmt.Fprintf(t.stdout, "pulling %s...\n", ref)
	return t.pullOCI(ref, d)
}

// pullOCI is tart's VMStorageOCI.pull as seen from outside: the manifest, the
// disk with a percentage line every tenth of the fault's DelayMS, the NVRAM,
// then the image appears in the cache at once (it was assembled in
// $TART_HOME/tmp). A Fault{Verb: "pull"} matching the reference makes it slow
// (DelayMS) or fail half-way (Fail); SIGINT cancels it and removes the partial
// download, as tart does.
func (t *tart) pullOCI(ref string, dst vmDir) int {
	f, err := pickFault(t.home, t.cfg, "pull", ref)
	if err != nil {
		return t.runtimeErr(1, "faketart: %v", err)
	}
	if f.Hang {
		return t.hang(f)
	}
	fmt.Fprintln(t.stdout, "pulling manifest...")
	src, ok := registryDir(t.home, ref)
	if !ok || !src.initialized() {
		return t.nsError(`UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}")`)
	}
	if dst.initialized() && sameImage(src, dst) {
		fmt.Fprintf(t.stdout, "%s image is already cached and linked!\n", ref)
		return 0
	}
	// Not cached, or the tag now names another image (SeedRemote again):
	// tart pulls the new digest and moves the tag to it.
	var sigs chan os.Signal
	if f.DelayMS > 0 { // only a slow pull can be interrupted, and only then is the process-wide handler needed
		sigs = make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt)
		defer signal.Stop(sigs)
		if release, err := registerProc(t.home); err == nil {
			defer release()
		}
	}

	tmpRoot := filepath.Join(t.home, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	tmp, err := os.MkdirTemp(tmpRoot, "pull-")
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	defer os.RemoveAll(tmp) // gone after the move; cleans up after a failure or cancel

	cfg, err := src.readConfig()
	if err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	compressed := float64(src.diskSize()) * 0.4 / 1e9
	fmt.Fprintf(t.stdout, "pulling disk (%.1f GB compressed)...\n", compressed)
	step := time.Duration(f.DelayMS) * time.Millisecond / 10
	for pct := 0; pct <= 100; pct += 10 {
		if pct == 50 && f.Fail != "" {
			return t.fail(f)
		}
		fmt.Fprintf(t.stdout, "%d%%\n", pct)
		if pct == 100 || step <= 0 {
			continue
		}
		select {
		case <-sigs:
			t.interrupted = true
			return t.nsError("CancellationError()")
		case <-time.After(step):
		}
	}
	fmt.Fprintln(t.stdout, "pulling NVRAM...")
	if err := copyVM(src, vmDir(tmp), cfg); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if err := os.MkdirAll(filepath.Dir(string(dst)), 0o755); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if err := os.RemoveAll(string(dst)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	if err := os.Rename(tmp, string(dst)); err != nil {
		return t.runtimeErr(1, "%v", err)
	}
	dst.touch()
	return 0
}

// registryDir is where SeedRemote puts ref: the fake registry, laid out like
// the OCI cache.
func registryDir(home, ref string) (vmDir, bool) {
	d, ok := ociDir(home, ref)
	if !ok {
		return "", false
	}
	rel := strings.TrimPrefix(string(d), filepath.Join(home, "cache", "OCIs"))
	return vmDir(filepath.Join(home, registryRoot, rel)), true
}

// sameImage stands in for comparing manifest digests: the same configuration
// (its MAC address is random per seed) and disk size.
func sameImage(a, b vmDir) bool {
	ca, err1 := os.ReadFile(a.config())
	cb, err2 := os.ReadFile(b.config())
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb) && a.diskSize() == b.diskSize()
}

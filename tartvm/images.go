package tartvm

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Images manages the local tart images the nightly rebuild reads and
// replaces (the scheduler's Images port). It is safe for concurrent use.
type Images struct{ c *Client }

// NewImages returns the image manager of c's tart.
func NewImages(c *Client) *Images { return &Images{c: c} }

// Exists reports whether a local image exists, as tart counts it: a directory
// missing some of its files does not (tart lists it nowhere and a rename may
// replace it).
func (im *Images) Exists(ctx context.Context, name string) (bool, error) {
	_, ok, err := im.find(ctx, name)
	return ok, err
}

// Remote reports whether ref names an OCI image (host/namespace/name[:tag]):
// tart local names cannot contain '/'.
func (im *Images) Remote(ref string) bool { return strings.Contains(ref, "/") }

// Pull fetches an OCI image, writing tart's progress lines to progress, and
// reports whether what the reference points at changed: tart says "image is
// already cached and linked!" when its tag still names the cached digest.
func (im *Images) Pull(ctx context.Context, ref string, progress io.Writer) (changed bool, err error) {
	out, err := im.c.pull(ctx, ref, progress)
	if err != nil {
		return false, err
	}
	s := string(out)
	if strings.Contains(s, "is a local image, nothing to pull here!") {
		return false, nil
	}
	return !strings.Contains(s, "image is already cached and linked!"), nil
}

// Rename renames a local image; tart refuses when to exists.
func (im *Images) Rename(ctx context.Context, from, to string) error {
	return im.c.Rename(ctx, from, to)
}

// Delete removes a local image; a missing one is not an error.
func (im *Images) Delete(ctx context.Context, name string) error { return im.c.Delete(ctx, name) }

// FreeBytes is the free space on the file system of TART_HOME.
func (im *Images) FreeBytes(ctx context.Context) (uint64, error) { return im.c.FreeDisk() }

// SizeBytes is what image takes on disk once a clone of it has written all
// its blocks: tart's Disk, the apparent size of its files (a clone starts as
// an APFS copy-on-write clone and grows towards it). image is a local name or
// an OCI reference already in tart's cache.
func (im *Images) SizeBytes(ctx context.Context, image string) (uint64, error) {
	vm, ok, err := im.find(ctx, image)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("tart image %q: not found (an OCI image must be pulled first)", image)
	}
	return uint64(max(vm.Disk, 0)) * 1_000_000_000, nil
}

// find looks image up in `tart list`, local or OCI by its form.
func (im *Images) find(ctx context.Context, image string) (VM, bool, error) {
	list := im.c.List
	if im.Remote(image) {
		list = im.c.ListOCI
	}
	vms, err := list(ctx)
	if err != nil {
		return VM{}, false, err
	}
	for _, vm := range vms {
		if vm.Name == image {
			return vm, true, nil
		}
	}
	return VM{}, false, nil
}

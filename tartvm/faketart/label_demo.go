package faketart

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Hooks for `tarty demo`, whose guest commands and narrator look into the
// fake's storage.

// VMsDir is the directory of local VMs under TART_HOME: one directory per VM,
// named after it. A guest command that must reach its own VM (the demo's
// shutdown command creates <VMsDir>/<name>/<PowerOffFile>) builds paths from it.
func VMsDir(home string) string { return filepath.Join(home, "vms") }

// PowerOffFile is the file in a VM's directory whose appearance powers the
// running guest off (see PowerOff).
const PowerOffFile = pokeFile

// LabelFile is the file in a VM's directory that clone copies byte for byte
// (nvram.bin; config.json gets a new MAC and the disk is recreated sparse).
// The demo keeps a short text there as the stand-in for what an image
// contains, so that a clone shows which image it came from.
const LabelFile = "nvram.bin"

// SetLabel writes label into local VM name's LabelFile.
func SetLabel(home, name, label string) error {
	d, ok := localDir(home, name)
	if !ok {
		return fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	return os.WriteFile(d.nvram(), []byte(label+"\n"), 0o644)
}

// Label reads the text in local VM name's LabelFile, without the final newline.
func Label(home, name string) (string, error) {
	d, ok := localDir(home, name)
	if !ok {
		return "", fmt.Errorf("faketart: %q is not a local VM name", name)
	}
	b, err := os.ReadFile(d.nvram())
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

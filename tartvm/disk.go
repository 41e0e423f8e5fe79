package tartvm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Home is the TART_HOME the client's tart calls use: Options.Home, else the
// environment's TART_HOME, else ~/.tart (tart's default).
func (c *Client) Home() (string, error) {
	if c.home != "" {
		return c.home, nil
	}
	if h := os.Getenv("TART_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("TART_HOME is not set and there is no home directory (launchd gives daemons none): set tart.home")
	}
	return filepath.Join(home, ".tart"), nil
}

// FreeDisk returns the bytes free for tart on the file system of its home
// (statfs): a pull or a clone that would not fit can be refused before tart
// starts pruning its cache or fills the disk. A home that does not exist yet
// is measured at its nearest existing parent.
func (c *Client) FreeDisk() (uint64, error) {
	home, err := c.Home()
	if err != nil {
		return 0, err
	}
	dir := filepath.Clean(home)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.TrimSpace(parent) == "" {
			break
		}
		dir = parent
	}
	return freeBytes(dir)
}

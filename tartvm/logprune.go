package tartvm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PruneLogs deletes the `tart run` logs in LogDir last written more than
// olderThan ago: one file per VM would otherwise pile up over months. A log
// still being written is younger than any sensible bound. It returns how
// many it deleted.
func (c *Client) PruneLogs(olderThan time.Duration, now time.Time) (int, error) {
	entries, err := os.ReadDir(c.logDir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("prune tart logs: %w", err)
	}
	n := 0
	var errs []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < olderThan {
			continue
		}
		if err := os.Remove(filepath.Join(c.logDir, e.Name())); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("prune tart logs: %s", strings.Join(errs, "; "))
	}
	return n, nil
}

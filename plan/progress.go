package plan

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar draws a reading's progress on one terminal line, redrawn in place at
// most ten times a second. Use it only on a terminal.
type Bar struct {
	w     io.Writer
	now   func() time.Time
	mu    sync.Mutex
	last  time.Time
	shown bool
}

// NewBar draws on w (stderr, a terminal).
func NewBar(w io.Writer) *Bar { return &Bar{w: w, now: time.Now} }

// Update draws p, unless the last drawing is too recent and p is not a
// phase's end or a note.
func (b *Bar) Update(p Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if p.Note == "" && p.Done != p.Total && now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last, b.shown = now, true
	const width = 30
	var line string
	if p.Note != "" {
		line = fmt.Sprintf("reading the history: %s", p.Note)
	} else {
		filled := 0
		if p.Total > 0 {
			filled = width * p.Done / p.Total
		}
		line = fmt.Sprintf("reading the history: %-12s [%s%s] %s/%s  %s units", p.Phase,
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), thousands(p.Done), thousands(p.Total), thousands(p.Units))
	}
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

// Done clears the line.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown {
		fmt.Fprint(b.w, "\r\033[K")
		b.shown = false
	}
}

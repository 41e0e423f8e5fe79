package plan

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlanProgressBar(t *testing.T) {
	var b bytes.Buffer
	bar := NewBar(&b)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	bar.now = func() time.Time { return at }
	bar.Update(Progress{Phase: "runs", Done: 300, Total: 1200, Units: 1312})
	bar.Update(Progress{Phase: "runs", Done: 301, Total: 1200, Units: 1313}) // too soon: not drawn
	at = at.Add(time.Second)
	bar.Update(Progress{Phase: "runs", Note: "GitHub's rate limit: waiting 30s"})
	bar.Update(Progress{Phase: "runs", Done: 1200, Total: 1200, Units: 2212}) // a phase's end: always drawn
	bar.Done()
	want := "\r\033[Kreading the history: runs         [#######.......................] 300/1,200  1,312 units" +
		"\r\033[Kreading the history: GitHub's rate limit: waiting 30s" +
		"\r\033[Kreading the history: runs         [##############################] 1,200/1,200  2,212 units" +
		"\r\033[K"
	if b.String() != want {
		t.Errorf("drawn:\n%q\nwant:\n%q", b.String(), want)
	}
	if strings.Count(b.String(), "301/") != 0 {
		t.Error("an update 0 s after the last was drawn")
	}
}

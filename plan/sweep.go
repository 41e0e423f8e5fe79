package plan

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tartyci/tarty/scheduler"
)

// Fleet is one setting of the sweep: how many Macs, each with how many
// warm runners (runners.warm on each Mac's Tarty).
type Fleet struct {
	Macs int `json:"macs"`
	Warm int `json:"warm"`
}

// Model is what every replay of a sweep shares.
type Model struct {
	SlotsPerMac int      // VMs a Mac runs at once: runners.max (Apple allows 2)
	Labels      []string // the labels Tarty serves
	Boot        time.Duration
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// RebuildHour < 0: no nightly rebuild. Otherwise it holds one slot of
	// each Mac for RebuildDuration from that hour (Location's) every night.
	RebuildHour     int
	RebuildDuration time.Duration
	Location        *time.Location
}

// Result is what the replay of one fleet measured.
type Result struct {
	Fleet
	Stats scheduler.ReplayStats
}

// Sweep replays the workload for every fleet, parallel replays at once (0:
// one per CPU). The results come in the order of fleets, and are the same
// however many run at once.
func Sweep(w Workload, m Model, fleets []Fleet, parallel int) ([]Result, error) {
	if len(w.Jobs) == 0 {
		return nil, errors.New("plan: no jobs to replay")
	}
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	results := make([]Result, len(fleets))
	errs := make([]error, len(fleets))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(fleets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				st, err := scheduler.Replay(m.config(fleets[i]), w.Jobs)
				if err != nil {
					errs[i] = fmt.Errorf("plan: %d Macs, warm %d: %w", fleets[i].Macs, fleets[i].Warm, err)
				}
				results[i] = Result{Fleet: fleets[i], Stats: st}
			}
		}()
	}
	for i := range fleets {
		work <- i
	}
	close(work)
	wg.Wait()
	return results, errors.Join(errs...)
}

func (m Model) config(f Fleet) scheduler.ReplayConfig {
	return scheduler.ReplayConfig{
		Macs: f.Macs, SlotsPerMac: m.SlotsPerMac, Warm: f.Warm, Labels: m.Labels,
		Boot: m.Boot, IdleTimeout: m.IdleTimeout, MaxLifetime: m.MaxLifetime,
		RebuildHour: m.RebuildHour, RebuildDuration: m.RebuildDuration, Location: m.Location,
	}
}

// Fleets is every pair of macs and warm, Macs first.
func Fleets(macs, warm []int) []Fleet {
	var out []Fleet
	for _, n := range macs {
		for _, k := range warm {
			out = append(out, Fleet{Macs: n, Warm: k})
		}
	}
	return out
}

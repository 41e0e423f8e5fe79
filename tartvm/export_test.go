package tartvm

import "time"

// FastBackend shortens the Backend's waits so tests of its retries take
// milliseconds, keeping their order and proportions.
func FastBackend(b *Backend) {
	b.t = backendTiming{
		stopTimeout: time.Second, stopPause: 100 * time.Millisecond, stopTries: 3, runExit: 5 * time.Second,
		deleteFor: 2 * time.Second, deleteFirst: 20 * time.Millisecond, deleteMax: 200 * time.Millisecond,
		ipPause: 50 * time.Millisecond, cleanupTimeout: 10 * time.Second, query: 10 * time.Second,
	}
}

package fakegithub

import (
	"fmt"
	"time"
)

// PastJob describes a job of the history for AddPastRun and AddPastAttempt:
// when it was created, started and completed, how it ended and which runner
// took it. No webhook is sent for it: it is history.
type PastJob struct {
	Name   string
	Labels []string
	// Created defaults to the attempt's start.
	Created time.Time
	// Started is when a runner took it; zero: none did (GitHub then shows
	// started_at = created_at and no runner).
	Started time.Time
	// Completed is when it ended; zero: still queued (or running, with Started).
	Completed time.Time
	// Conclusion defaults to "success" for a completed job: failure,
	// cancelled, skipped, ...
	Conclusion string
	RunnerName string
}

// AddPastRun adds a run of repo (added if missing) created at created, whose
// first attempt's jobs are as described, and returns it. Its status and
// updated_at follow from its jobs (updated_at: the last completion).
func (s *Server) AddPastRun(repo string, created time.Time, jobs ...PastJob) Run {
	created = created.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.newRunLocked(repo, created)
	s.addPastJobsLocked(r, created, jobs)
	s.bump()
	return r.copy()
}

// AddPastAttempt adds the next attempt of a run (a re-run), started at
// started, with jobs as described (new job IDs): the run keeps its ID and
// created_at, as on GitHub.
func (s *Server) AddPastAttempt(runID int64, started time.Time, jobs ...PastJob) (Run, error) {
	started = started.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.runs[runID]
	if !ok {
		return Run{}, fmt.Errorf("fakegithub: no run %d", runID)
	}
	r.RunAttempt++
	r.RunStartedAt = started
	s.addPastJobsLocked(r, started, jobs)
	s.bump()
	return r.copy(), nil
}

func (s *Server) addPastJobsLocked(r *Run, start time.Time, specs []PastJob) {
	last := start
	for i, p := range specs {
		j := &Job{ID: s.st.id(), RunID: r.ID, RunAttempt: r.RunAttempt, Repo: r.Repo, Name: p.Name,
			Labels: append([]string(nil), p.Labels...), CreatedAt: p.Created.UTC().Truncate(time.Second),
			StartedAt: p.Started.UTC().Truncate(time.Second), CompletedAt: p.Completed.UTC().Truncate(time.Second),
			RunnerName: p.RunnerName, Conclusion: p.Conclusion}
		if p.Created.IsZero() {
			j.CreatedAt = start
		}
		if p.Started.IsZero() {
			j.StartedAt = time.Time{}
		}
		if p.Completed.IsZero() {
			j.CompletedAt = time.Time{}
		}
		if j.Name == "" {
			j.Name = fmt.Sprintf("job-%d", i+1)
		}
		switch {
		case !j.CompletedAt.IsZero():
			j.Status = "completed"
			if j.Conclusion == "" {
				j.Conclusion = "success"
			}
			if j.CompletedAt.After(last) {
				last = j.CompletedAt
			}
		case !j.StartedAt.IsZero():
			j.Status = "in_progress"
		default:
			j.Status = "queued"
		}
		if j.RunnerName != "" {
			if rn, ok := s.runnerByNameLocked(j.RunnerName); ok {
				j.RunnerID, j.RunnerGroupID = rn.ID, rn.GroupID
			}
		}
		s.st.jobs[j.ID] = j
		r.JobIDs = append(r.JobIDs, j.ID)
	}
	s.deriveRun(r)
	r.UpdatedAt = last // the history's time, not the server's clock
	if r.UpdatedAt.Before(r.CreatedAt) {
		r.UpdatedAt = r.CreatedAt
	}
}

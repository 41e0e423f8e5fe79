package fakegithub

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Repo is a repository of the organisation.
type Repo struct {
	ID       int64
	Name     string
	FullName string
	Archived bool
}

// Runner is a registered self-hosted runner.
type Runner struct {
	ID      int64
	Name    string
	Scope   string // "" for organisation runners, "owner/repo" for repository runners
	Status  string // "online" or "offline"
	Busy    bool
	Labels  []string
	GroupID int64
}

// Run is a workflow run.
type Run struct {
	ID         int64
	Repo       string // owner/name
	Status     string // queued, in_progress, completed, ...
	Conclusion string
	RunAttempt int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	JobIDs     []int64
}

// Job is a job of a workflow run.
type Job struct {
	ID         int64
	RunID      int64
	RunAttempt int64
	Repo       string
	Name       string
	Status     string // queued, in_progress, completed, waiting
	Conclusion string
	Labels     []string
	RunnerName string
	CreatedAt  time.Time
	StartedAt  time.Time
}

// JobSpec describes a job for AddRun.
type JobSpec struct {
	Name   string
	Labels []string
	Status string // default "queued"
}

// JITRequest records one accepted JIT registration.
type JITRequest struct {
	Scope         string // "" organisation, "owner/repo" repository
	Name          string
	Labels        []string
	RunnerGroupID int64
	WorkFolder    string
	RunnerID      int64
	Encoded       string // the encoded config handed out (fake, but unique)
}

type group struct {
	ID   int64
	Name string
}

type state struct {
	nextID  int64
	repos   map[string]*Repo // lower-case full name
	groups  []group
	runners map[int64]*Runner
	runs    map[int64]*Run
	jobs    map[int64]*Job
	jits    []JITRequest
}

func (st *state) init() {
	st.nextID = 1000
	st.repos = map[string]*Repo{}
	st.groups = []group{{ID: 1, Name: "Default"}}
	st.runners = map[int64]*Runner{}
	st.runs = map[int64]*Run{}
	st.jobs = map[int64]*Job{}
}

func (st *state) id() int64 {
	st.nextID++
	return st.nextID
}

// fullName turns "app" into "org/app" and keeps "owner/app".
func (s *Server) fullName(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return s.org + "/" + name
}

// AddRepo adds a repository ("app" or "org/app") to the organisation and
// returns its full name. Adding it again is a no-op.
func (s *Server) AddRepo(name string) string {
	fn := s.fullName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.repos[strings.ToLower(fn)]; !ok {
		_, short, _ := strings.Cut(fn, "/")
		s.st.repos[strings.ToLower(fn)] = &Repo{ID: s.st.id(), Name: short, FullName: fn}
	}
	return fn
}

// RemoveRepo deletes a repository with its runs, jobs and runners.
func (s *Server) RemoveRepo(name string) {
	fn := s.fullName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, ok := s.st.repos[strings.ToLower(fn)]
	if !ok {
		return
	}
	delete(s.st.repos, strings.ToLower(fn))
	for id, r := range s.st.runs {
		if r.Repo == repo.FullName {
			for _, j := range r.JobIDs {
				delete(s.st.jobs, j)
			}
			delete(s.st.runs, id)
		}
	}
	for id, rn := range s.st.runners {
		if rn.Scope == repo.FullName {
			delete(s.st.runners, id)
		}
	}
}

// SetArchived marks a repository archived (or not).
func (s *Server) SetArchived(name string, archived bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.repos[strings.ToLower(s.fullName(name))]
	if !ok {
		return fmt.Errorf("fakegithub: no repository %s", name)
	}
	r.Archived = archived
	return nil
}

// AddRunnerGroup adds an organisation runner group and returns its ID.
func (s *Server) AddRunnerGroup(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.st.id()
	s.st.groups = append(s.st.groups, group{ID: id, Name: name})
	return id
}

// AddRun adds a workflow run with the given status to repo (which is added
// if missing) and its jobs (status default "queued"); created zero means now.
func (s *Server) AddRun(repo, status string, created time.Time, jobs ...JobSpec) Run {
	fn := s.AddRepo(repo)
	if created.IsZero() {
		created = s.now()
	}
	created = created.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Run{ID: s.st.id(), Repo: fn, Status: status, RunAttempt: 1, CreatedAt: created, UpdatedAt: created}
	for i, js := range jobs {
		j := &Job{
			ID: s.st.id(), RunID: r.ID, RunAttempt: 1, Repo: fn, Name: js.Name, Status: js.Status,
			Labels: append([]string(nil), js.Labels...), CreatedAt: created,
		}
		if j.Name == "" {
			j.Name = fmt.Sprintf("job-%d", i+1)
		}
		if j.Status == "" {
			j.Status = "queued"
		}
		if j.Status == "in_progress" {
			j.StartedAt = created
		}
		s.st.jobs[j.ID] = j
		r.JobIDs = append(r.JobIDs, j.ID)
	}
	s.st.runs[r.ID] = r
	return r.copy()
}

// SetJobStatus moves a job to status (queued, in_progress, completed, waiting),
// with the runner that took it, and derives its run's status: in_progress once
// a job started, completed when every job completed.
func (s *Server) SetJobStatus(jobID int64, status, runnerName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.st.jobs[jobID]
	if !ok {
		return fmt.Errorf("fakegithub: no job %d", jobID)
	}
	now := s.now().UTC().Truncate(time.Second)
	j.Status = status
	if runnerName != "" {
		j.RunnerName = runnerName
	}
	switch status {
	case "in_progress":
		j.StartedAt = now
	case "completed":
		j.Conclusion = "success"
	}
	r := s.st.runs[j.RunID]
	r.UpdatedAt = now
	all, started := true, false
	for _, id := range r.JobIDs {
		switch s.st.jobs[id].Status {
		case "completed":
			started = true
		case "in_progress":
			started, all = true, false
		default:
			all = false
		}
	}
	switch {
	case all:
		r.Status, r.Conclusion = "completed", "success"
	case started:
		r.Status = "in_progress"
	}
	return nil
}

// SetRunStatus sets a run's status directly.
func (s *Server) SetRunStatus(runID int64, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.runs[runID]
	if !ok {
		return fmt.Errorf("fakegithub: no run %d", runID)
	}
	r.Status, r.UpdatedAt = status, s.now().UTC().Truncate(time.Second)
	return nil
}

// Job returns a job by ID.
func (s *Server) Job(id int64) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.st.jobs[id]
	if !ok {
		return Job{}, false
	}
	return j.copy(), true
}

// Run returns a run by ID.
func (s *Server) Run(id int64) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.runs[id]
	if !ok {
		return Run{}, false
	}
	return r.copy(), true
}

// AddRunner registers a runner directly (as config.sh would), offline and idle.
// scope is "" for the organisation or "owner/repo".
func (s *Server) AddRunner(scope, name string, labels ...string) Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Runner{ID: s.st.id(), Name: name, Scope: scope, Status: "offline", Labels: append([]string(nil), labels...), GroupID: 1}
	s.st.runners[r.ID] = r
	return r.copy()
}

// SetRunnerStatus sets a runner "online" or "offline".
func (s *Server) SetRunnerStatus(id int64, status string) error {
	return s.updateRunner(id, func(r *Runner) { r.Status = status })
}

// SetRunnerBusy marks a runner busy (running a job, hence online) or idle.
func (s *Server) SetRunnerBusy(id int64, busy bool) error {
	return s.updateRunner(id, func(r *Runner) {
		r.Busy = busy
		if busy {
			r.Status = "online"
		}
	})
}

// updateRunner applies change to runner id under the lock.
func (s *Server) updateRunner(id int64, change func(*Runner)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.runners[id]
	if !ok {
		return fmt.Errorf("fakegithub: no runner %d", id)
	}
	change(r)
	return nil
}

// DeleteRunner removes a registration, as GitHub does for an ephemeral runner
// after its job.
func (s *Server) DeleteRunner(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.st.runners, id)
}

// Runners lists registered runners by ID.
func (s *Server) Runners() []Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Runner, 0, len(s.st.runners))
	for _, r := range s.st.runners {
		out = append(out, r.copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RunnerByName finds a registered runner by name.
func (s *Server) RunnerByName(name string) (Runner, bool) {
	for _, r := range s.Runners() {
		if r.Name == name {
			return r, true
		}
	}
	return Runner{}, false
}

// JITRequests lists the accepted JIT registrations in order.
func (s *Server) JITRequests() []JITRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]JITRequest, len(s.st.jits))
	for i, j := range s.st.jits {
		j.Labels = append([]string(nil), j.Labels...)
		out[i] = j
	}
	return out
}

func (r *Runner) copy() Runner {
	c := *r
	c.Labels = append([]string(nil), r.Labels...)
	return c
}

func (r *Run) copy() Run {
	c := *r
	c.JobIDs = append([]int64(nil), r.JobIDs...)
	return c
}

func (j *Job) copy() Job {
	c := *j
	c.Labels = append([]string(nil), j.Labels...)
	return c
}

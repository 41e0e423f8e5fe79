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
	// Visibility is "private" (the default), "public" or "internal".
	Visibility string
}

// Private reports whether the repository is not public (GitHub's "private"
// field is true for internal repositories too).
func (r Repo) Private() bool { return r.Visibility != "public" }

// RunnerGroup is an organisation runner group and the repositories it may
// serve. GitHub hands a group's runners only jobs of repositories it serves.
type RunnerGroup struct {
	ID   int64
	Name string
	// Visibility: "all" (the default), "selected" (Repositories only) or
	// "private" (private and internal repositories only).
	Visibility string
	// AllowsPublicRepositories lets the group serve public repositories
	// (false by default, as for GitHub's Default group).
	AllowsPublicRepositories bool
	// Repositories are the full names a "selected" group serves.
	Repositories []string
	// Hosted marks a group of GitHub-hosted runners: registering a
	// self-hosted runner into it answers 403.
	Hosted bool
}

// serves applies GitHub's rule to a repository.
func (g *RunnerGroup) serves(r *Repo) bool {
	if r == nil {
		return false
	}
	if !r.Private() && (!g.AllowsPublicRepositories || g.Visibility == "private") {
		return false
	}
	if g.Visibility == "selected" {
		for _, fn := range g.Repositories {
			if strings.EqualFold(fn, r.FullName) {
				return true
			}
		}
		return false
	}
	return true
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
	// JobID is the job the runner was handed through the runner protocol, 0 if none.
	JobID int64

	secret    string // the JIT credential, checked when a fake runner connects
	connected bool   // its JIT config was used
}

// Run is a workflow run.
type Run struct {
	ID           int64
	Repo         string // owner/name
	Status       string // queued, in_progress, completed, waiting, requested, pending
	Conclusion   string
	RunAttempt   int64
	CreatedAt    time.Time // kept by re-runs
	UpdatedAt    time.Time
	RunStartedAt time.Time // the latest attempt's start
	JobIDs       []int64   // every attempt's jobs
}

// Job is a job of a workflow run.
type Job struct {
	ID              int64
	RunID           int64
	RunAttempt      int64
	Repo            string
	Name            string
	Status          string // queued, in_progress, completed, waiting, requested, pending
	Conclusion      string
	Labels          []string
	RunnerID        int64
	RunnerName      string
	RunnerGroupID   int64
	RunnerGroupName string
	CreatedAt       time.Time
	StartedAt       time.Time
	CompletedAt     time.Time
}

// JobSpec describes a job for AddRun.
type JobSpec struct {
	Name   string
	Labels []string
	// Status is the job's status (default "queued"): queued, waiting (behind
	// an environment approval), in_progress, completed, requested or pending.
	Status string
}

// JITRequest records one accepted JIT registration.
type JITRequest struct {
	Scope         string // "" organisation, "owner/repo" repository
	Name          string
	Labels        []string
	RunnerGroupID int64
	WorkFolder    string
	RunnerID      int64
	Encoded       string // the encoded config handed out
}

type state struct {
	nextID  int64
	repos   map[string]*Repo // lower-case full name
	groups  []*RunnerGroup
	runners map[int64]*Runner
	runs    map[int64]*Run
	jobs    map[int64]*Job
	jits    []JITRequest

	actionsDisabled     map[string]bool // "" = organisation, else lower-case full name
	repoRunnersDisabled bool
	sessions            map[string]int64 // fake runner session -> runner ID
}

func (st *state) init() {
	st.nextID = 1000
	st.repos = map[string]*Repo{}
	st.groups = []*RunnerGroup{{ID: 1, Name: "Default", Visibility: "all"}}
	st.runners = map[int64]*Runner{}
	st.runs = map[int64]*Run{}
	st.jobs = map[int64]*Job{}
	st.actionsDisabled = map[string]bool{}
	st.sessions = map[string]int64{}
}

func (st *state) id() int64 {
	st.nextID++
	return st.nextID
}

func (st *state) group(id int64) *RunnerGroup {
	for _, g := range st.groups {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// fullName turns "app" into "org/app" and keeps "owner/app".
func (s *Server) fullName(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return s.org + "/" + name
}

// AddRepo adds a private repository ("app" or "org/app") to the
// organisation and returns its full name. Adding it again is a no-op.
func (s *Server) AddRepo(name string) string {
	fn := s.fullName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addRepoLocked(fn)
	return fn
}

func (s *Server) addRepoLocked(fn string) *Repo {
	r, ok := s.st.repos[strings.ToLower(fn)]
	if !ok {
		_, short, _ := strings.Cut(fn, "/")
		r = &Repo{ID: s.st.id(), Name: short, FullName: fn, Visibility: "private"}
		s.st.repos[strings.ToLower(fn)] = r
	}
	return r
}

// AddPublicRepo adds a public repository and returns its full name.
func (s *Server) AddPublicRepo(name string) string {
	fn := s.AddRepo(name)
	_ = s.SetVisibility(fn, "public")
	return fn
}

// SetVisibility makes a repository "private", "public" or "internal".
func (s *Server) SetVisibility(name, visibility string) error {
	switch visibility {
	case "private", "public", "internal":
	default:
		return fmt.Errorf("fakegithub: visibility %q", visibility)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.repos[strings.ToLower(s.fullName(name))]
	if !ok {
		return fmt.Errorf("fakegithub: no repository %s", name)
	}
	r.Visibility = visibility
	s.bump()
	return nil
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
	s.bump()
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

// AddRunnerGroup adds an organisation runner group visible to all private
// repositories (GitHub's defaults) and returns its ID.
func (s *Server) AddRunnerGroup(name string) int64 {
	return s.AddRunnerGroupWith(RunnerGroup{Name: name})
}

// AddRunnerGroupWith adds a runner group as described (ID is assigned) and
// returns its ID.
func (s *Server) AddRunnerGroupWith(g RunnerGroup) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.ID = s.st.id()
	if g.Visibility == "" {
		g.Visibility = "all"
	}
	g.Repositories = s.fullNames(g.Repositories)
	s.st.groups = append(s.st.groups, &g)
	return g.ID
}

// SetRunnerGroupAccess changes which repositories group id serves:
// visibility "all", "selected" (repos) or "private", and whether public
// repositories are allowed. Group 1 is "Default".
func (s *Server) SetRunnerGroupAccess(id int64, visibility string, allowsPublic bool, repos ...string) error {
	switch visibility {
	case "all", "selected", "private":
	default:
		return fmt.Errorf("fakegithub: runner group visibility %q", visibility)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.group(id)
	if g == nil {
		return fmt.Errorf("fakegithub: no runner group %d", id)
	}
	g.Visibility, g.AllowsPublicRepositories, g.Repositories = visibility, allowsPublic, s.fullNames(repos)
	s.bump()
	return nil
}

func (s *Server) fullNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = s.fullName(n)
	}
	return out
}

// SetActionsEnabled enables or disables GitHub Actions for the organisation
// (scope "") or a repository: JIT registration there answers 409 "GitHub
// Actions is disabled on this ...".
func (s *Server) SetActionsEnabled(scope string, enabled bool) {
	key := ""
	if scope != "" {
		key = strings.ToLower(s.fullName(scope))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.actionsDisabled[key] = !enabled
}

// SetRepositoryRunnersDisabled imitates the organisation or enterprise
// policy that forbids repository-level self-hosted runners: repository JIT
// registration answers 403 "Repository level self-hosted runners are
// disabled on this repository".
func (s *Server) SetRepositoryRunnersDisabled(disabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.repoRunnersDisabled = disabled
}

// AddRun adds a workflow run to repo (which is added if missing) with its
// jobs (status default "queued"), created at created (zero: now). status ""
// derives the run's status from its jobs as GitHub does; any other value is
// kept until a job of the run changes. Queued and waiting jobs are announced
// to the webhook (queued; for waiting jobs, queued with status waiting then
// waiting); jobs added in other states are history and are not.
func (s *Server) AddRun(repo, status string, created time.Time, jobs ...JobSpec) Run {
	if created.IsZero() {
		created = s.now()
	}
	created = created.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.newRunLocked(repo, created)
	s.addJobsLocked(r, created, jobs)
	s.deriveRun(r)
	if status != "" {
		r.Status = status
		if status == "completed" && r.Conclusion == "" {
			r.Conclusion = "success"
		}
	}
	s.bump()
	return r.copy()
}

// newRunLocked adds a run's first attempt, created at created (whole
// seconds, UTC), to repo, which is added if missing; the caller holds s.mu.
func (s *Server) newRunLocked(repo string, created time.Time) *Run {
	fn := s.addRepoLocked(s.fullName(repo)).FullName
	r := &Run{ID: s.st.id(), Repo: fn, RunAttempt: 1, CreatedAt: created, UpdatedAt: created, RunStartedAt: created}
	s.st.runs[r.ID] = r
	return r
}

func (s *Server) addJobsLocked(r *Run, created time.Time, specs []JobSpec) []*Job {
	var out []*Job
	for i, js := range specs {
		j := &Job{
			ID: s.st.id(), RunID: r.ID, RunAttempt: r.RunAttempt, Repo: r.Repo, Name: js.Name, Status: js.Status,
			Labels: append([]string(nil), js.Labels...), CreatedAt: created,
		}
		if j.Name == "" {
			j.Name = fmt.Sprintf("job-%d", i+1)
		}
		if j.Status == "" {
			j.Status = "queued"
		}
		switch j.Status {
		case "in_progress":
			j.StartedAt = created
		case "completed":
			j.StartedAt, j.CompletedAt, j.Conclusion = created, created, "success"
		}
		s.st.jobs[j.ID] = j
		r.JobIDs = append(r.JobIDs, j.ID)
		out = append(out, j)
		switch j.Status {
		case "queued":
			s.emitJob("queued", j)
		case "waiting":
			s.emitJob("queued", j)
			s.emitJob("waiting", j)
		}
	}
	return out
}

// QueueJob adds a run to repo with one queued job carrying labels, sends its
// queued webhook, and returns the job.
func (s *Server) QueueJob(repo string, labels ...string) Job {
	r := s.AddRun(repo, "", time.Time{}, JobSpec{Labels: labels})
	j, _ := s.Job(r.JobIDs[0])
	return j
}

// Rerun starts a new attempt of a completed run created less than 30 days
// ago, as GitHub's "Re-run all jobs" does: the run keeps its ID and
// created_at, run_attempt grows by one, run_started_at becomes now, and the
// latest attempt's jobs are copied as new queued jobs with new IDs (each
// announced to the webhook). It returns the run.
func (s *Server) Rerun(runID int64) (Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.rerunLocked(runID)
	if err != nil {
		return Run{}, err
	}
	return r.copy(), nil
}

func (s *Server) rerunLocked(runID int64) (*Run, error) {
	r, ok := s.st.runs[runID]
	if !ok {
		return nil, fmt.Errorf("fakegithub: no run %d", runID)
	}
	now := s.now().UTC().Truncate(time.Second)
	if r.Status != "completed" {
		return nil, fmt.Errorf("fakegithub: run %d is %s, not completed", runID, r.Status)
	}
	if now.Sub(r.CreatedAt) > 30*24*time.Hour {
		return nil, fmt.Errorf("fakegithub: run %d was created over a month ago", runID)
	}
	var specs []JobSpec
	for _, id := range r.JobIDs {
		if j := s.st.jobs[id]; j.RunAttempt == r.RunAttempt {
			specs = append(specs, JobSpec{Name: j.Name, Labels: j.Labels})
		}
	}
	r.RunAttempt++
	r.RunStartedAt, r.UpdatedAt = now, now
	s.addJobsLocked(r, now, specs)
	s.deriveRun(r)
	s.bump()
	return r, nil
}

// SetJobStatus moves a job to status (queued, waiting, in_progress,
// completed, requested, pending), with the runner that took it (optional),
// derives its run's status from its jobs, and sends the matching webhook
// (queued, waiting, in_progress or completed).
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
		if rn, ok := s.runnerByNameLocked(runnerName); ok {
			j.RunnerID, j.RunnerGroupID = rn.ID, rn.GroupID
			if g := s.st.group(rn.GroupID); g != nil {
				j.RunnerGroupName = g.Name
			}
		}
	}
	switch status {
	case "in_progress":
		j.StartedAt = now
	case "completed":
		j.CompletedAt = now
		if j.Conclusion == "" {
			j.Conclusion = "success"
		}
	}
	s.deriveRun(s.st.runs[j.RunID])
	switch status {
	case "queued", "waiting", "in_progress", "completed":
		s.emitJob(status, j)
	}
	s.bump()
	return nil
}

// deriveRun sets a run's status from its latest attempt's jobs, as GitHub
// does: completed when all are; in_progress when one runs (or some are done
// and others not); waiting when one waits for an approval, even while others
// are queued; queued; pending; requested.
func (s *Server) deriveRun(r *Run) {
	n := map[string]int{}
	total := 0
	concl := "success"
	for _, id := range r.JobIDs {
		j := s.st.jobs[id]
		if j.RunAttempt != r.RunAttempt {
			continue
		}
		total++
		n[j.Status]++
		switch {
		case j.Status != "completed":
		case j.Conclusion == "failure":
			concl = "failure"
		case j.Conclusion == "cancelled" && concl == "success":
			concl = "cancelled"
		}
	}
	r.Conclusion = ""
	switch {
	case total == 0:
		r.Status = "queued"
	case n["completed"] == total:
		r.Status, r.Conclusion = "completed", concl
	case n["in_progress"] > 0:
		r.Status = "in_progress"
	case n["waiting"] > 0:
		r.Status = "waiting"
	case n["completed"] > 0:
		r.Status = "in_progress"
	case n["queued"] > 0:
		r.Status = "queued"
	case n["pending"] > 0:
		r.Status = "pending"
	default:
		r.Status = "requested"
	}
	r.UpdatedAt = s.now().UTC().Truncate(time.Second)
	if r.UpdatedAt.Before(r.CreatedAt) {
		r.UpdatedAt = r.CreatedAt
	}
}

// SetRunStatus sets a run's status directly, until a job of the run changes.
func (s *Server) SetRunStatus(runID int64, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.runs[runID]
	if !ok {
		return fmt.Errorf("fakegithub: no run %d", runID)
	}
	r.Status, r.UpdatedAt = status, s.now().UTC().Truncate(time.Second)
	s.bump()
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

// Jobs lists every job, by ID.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.st.jobs))
	for _, j := range s.st.jobs {
		out = append(out, j.copy())
	}
	sort.Slice(out, func(i, k int) bool { return out[i].ID < out[k].ID })
	return out
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

// AddRunner registers a runner directly (as config.sh would), offline and
// idle, in the Default group. scope is "" for the organisation or "owner/repo".
func (s *Server) AddRunner(scope, name string, labels ...string) Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Runner{ID: s.st.id(), Name: name, Scope: scope, Status: "offline", Labels: append([]string(nil), labels...), GroupID: 1}
	s.st.runners[r.ID] = r
	s.bump()
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
	s.bump()
	return nil
}

// DeleteRunner removes a registration, as GitHub does for an ephemeral runner
// after its job. A fake runner holding it is refused from then on.
func (s *Server) DeleteRunner(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.st.runners, id)
	s.bump()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runnerByNameLocked(name)
	if !ok {
		return Runner{}, false
	}
	return r.copy(), true
}

func (s *Server) runnerByNameLocked(name string) (*Runner, bool) {
	for _, r := range s.st.runners {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
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

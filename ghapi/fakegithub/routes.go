package fakegithub

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /rate_limit", s.getRateLimit)
	m.HandleFunc("POST /app/installations/{id}/access_tokens", s.postAccessToken)
	m.HandleFunc("GET /orgs/{org}", s.getOrg)
	m.HandleFunc("GET /orgs/{org}/repos", s.listOrgRepos)
	m.HandleFunc("GET /repos/{owner}/{repo}", s.getRepo)
	m.HandleFunc("GET /orgs/{org}/actions/runner-groups", s.listRunnerGroups)
	m.HandleFunc("GET /orgs/{org}/actions/runner-groups/{id}", s.getRunnerGroup)
	m.HandleFunc("GET /orgs/{org}/actions/runner-groups/{id}/repositories", s.listRunnerGroupRepos)
	m.HandleFunc("POST /repos/{owner}/{repo}/actions/runs/{id}/rerun", s.postRerun)
	m.HandleFunc("POST /orgs/{org}/actions/runners/generate-jitconfig", s.postJIT)
	m.HandleFunc("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", s.postJIT)
	m.HandleFunc("GET /orgs/{org}/actions/runners", s.listRunners)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runners", s.listRunners)
	m.HandleFunc("GET /orgs/{org}/actions/runners/{id}", s.getRunner)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runners/{id}", s.getRunner)
	m.HandleFunc("DELETE /orgs/{org}/actions/runners/{id}", s.deleteRunner)
	m.HandleFunc("DELETE /repos/{owner}/{repo}/actions/runners/{id}", s.deleteRunner)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runs", s.listRuns)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runs/{id}/jobs", s.listJobs)
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/jobs/{id}", s.getJob)
	s.upkeepRoutes(m)
	m.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, "Not Found") })
	s.mux = m
}

// scope resolves the org or repository named in the path: "" for the
// organisation, "owner/repo" for a repository. ok is false when unknown.
// The caller holds s.mu.
func (s *Server) scope(r *http.Request) (scope string, ok bool) {
	if org := r.PathValue("org"); org != "" {
		return "", strings.EqualFold(org, s.org)
	}
	fn := r.PathValue("owner") + "/" + r.PathValue("repo")
	repo, ok := s.st.repos[strings.ToLower(fn)]
	if !ok {
		return "", false
	}
	return repo.FullName, true
}

func (s *Server) getRateLimit(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.rollWindow()
	core := map[string]int64{
		"limit": int64(s.lim), "remaining": int64(s.rate.remaining),
		"used": int64(s.rate.used), "reset": s.rate.reset.Unix(),
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"resources": map[string]any{"core": core}, "rate": core})
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.PathValue("org"), s.org) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": s.org, "id": 1, "type": "Organization"})
}

func (s *Server) repoJSON(repo *Repo) map[string]any {
	owner, _, _ := strings.Cut(repo.FullName, "/")
	return map[string]any{
		"id": repo.ID, "node_id": "R_kgDO" + strconv.FormatInt(repo.ID, 36), "name": repo.Name, "full_name": repo.FullName,
		"owner":      map[string]any{"login": owner, "id": 1, "type": "Organization"},
		"private":    repo.Private(),
		"visibility": repo.Visibility,
		"archived":   repo.Archived,
		"disabled":   false,
		"html_url":   "https://github.com/" + repo.FullName,
		"url":        s.apiURL("repos/" + repo.FullName),
	}
}

func (s *Server) listOrgRepos(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if _, ok := s.scope(r); !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	repos := make([]*Repo, 0, len(s.st.repos))
	for _, repo := range s.st.repos {
		repos = append(repos, repo)
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].ID < repos[j].ID })
	lo, hi := page(w, r, len(repos))
	out := make([]map[string]any, 0, hi-lo)
	for _, repo := range repos[lo:hi] {
		out = append(out, s.repoJSON(repo))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var out map[string]any
	if repo, ok := s.st.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]; ok {
		out = s.repoJSON(repo)
	}
	s.mu.Unlock()
	writeFound(w, out)
}

func (s *Server) listRunnerGroups(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if _, ok := s.scope(r); !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	lo, hi := page(w, r, len(s.st.groups))
	out := make([]map[string]any, 0, hi-lo)
	for _, g := range s.st.groups[lo:hi] {
		out = append(out, s.groupJSON(g))
	}
	total := len(s.st.groups)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": total, "runner_groups": out})
}

func (s *Server) groupJSON(g *RunnerGroup) map[string]any {
	base := "orgs/" + s.org + "/actions/runner-groups/" + strconv.FormatInt(g.ID, 10)
	out := map[string]any{
		"id": g.ID, "name": g.Name, "visibility": g.Visibility, "default": g.ID == 1,
		"inherited": false, "allows_public_repositories": g.AllowsPublicRepositories,
		"restricted_to_workflows": false, "selected_workflows": []string{},
		"runners_url": s.apiURL(base + "/runners"),
	}
	if g.Visibility == "selected" {
		out["selected_repositories_url"] = s.apiURL(base + "/repositories")
	}
	if g.Hosted {
		out["hosted_runners_url"] = s.apiURL(base + "/hosted-runners")
	}
	return out
}

// groupOf finds the path's runner group; the caller holds s.mu.
func (s *Server) groupOf(r *http.Request) *RunnerGroup {
	if _, ok := s.scope(r); !ok {
		return nil
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil
	}
	return s.st.group(id)
}

func (s *Server) getRunnerGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var out map[string]any
	if g := s.groupOf(r); g != nil {
		out = s.groupJSON(g)
	}
	s.mu.Unlock()
	writeFound(w, out)
}

// listRunnerGroupRepos lists the repositories a "selected" group serves
// (none for the others: their access is not a list).
func (s *Server) listRunnerGroupRepos(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g := s.groupOf(r)
	if g == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var repos []*Repo
	if g.Visibility == "selected" {
		for _, fn := range g.Repositories {
			if repo, ok := s.st.repos[strings.ToLower(fn)]; ok {
				repos = append(repos, repo)
			}
		}
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].ID < repos[j].ID })
	lo, hi := page(w, r, len(repos))
	out := make([]map[string]any, 0, hi-lo)
	for _, repo := range repos[lo:hi] {
		out = append(out, s.repoJSON(repo))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(repos), "repositories": out})
}

// runOf finds the path's workflow run in the path's repository; the caller
// holds s.mu.
func (s *Server) runOf(r *http.Request) *Run {
	scope, ok := s.scope(r)
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	run, found := s.st.runs[id]
	if !ok || !found || run.Repo != scope {
		return nil
	}
	return run
}

func (s *Server) postRerun(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	run := s.runOf(r)
	if run == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	_, err := s.rerunLocked(run.ID)
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusForbidden, "Unable to re-run this workflow run: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{})
}

func runnerJSON(rn *Runner) map[string]any {
	labels := make([]map[string]any, len(rn.Labels))
	for i, l := range rn.Labels {
		typ := "custom"
		switch strings.ToLower(l) {
		case "self-hosted", "macos", "arm64", "linux", "x64", "windows":
			typ = "read-only"
		}
		labels[i] = map[string]any{"id": i + 1, "name": l, "type": typ}
	}
	return map[string]any{
		"id": rn.ID, "name": rn.Name, "os": "macOS", "status": rn.Status, "busy": rn.Busy,
		"ephemeral": true, "runner_group_id": rn.GroupID, "labels": labels,
	}
}

func (s *Server) listRunners(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	scope, ok := s.scope(r)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	name := r.URL.Query().Get("name")
	var list []*Runner
	for _, rn := range s.st.runners {
		if rn.Scope == scope && (name == "" || rn.Name == name) {
			list = append(list, rn)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	lo, hi := page(w, r, len(list))
	out := make([]map[string]any, 0, hi-lo)
	for _, rn := range list[lo:hi] {
		out = append(out, runnerJSON(rn))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "runners": out})
}

// findRunner looks a runner up in the path's scope; the caller holds s.mu.
func (s *Server) findRunner(r *http.Request) (*Runner, bool) {
	scope, ok := s.scope(r)
	if !ok {
		return nil, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, false
	}
	rn, ok := s.st.runners[id]
	if !ok || rn.Scope != scope {
		return nil, false
	}
	return rn, true
}

func (s *Server) getRunner(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var out map[string]any
	if rn, ok := s.findRunner(r); ok {
		out = runnerJSON(rn)
	}
	s.mu.Unlock()
	writeFound(w, out)
}

func (s *Server) deleteRunner(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rn, ok := s.findRunner(r)
	busy := ok && rn.Busy
	name := ""
	if ok {
		name = rn.Name
		if !busy {
			delete(s.st.runners, rn.ID)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "Not Found")
	case busy:
		writeError(w, http.StatusUnprocessableEntity, `Bad request - Runner "`+name+`" is still running a job"`)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	created, err := parseCreated(q.Get("created"))
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: created: "+err.Error())
		return
	}
	s.mu.Lock()
	scope, ok := s.scope(r)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	status := q.Get("status")
	var list []*Run
	for _, run := range s.st.runs {
		if run.Repo == scope && (status == "" || run.Status == status || run.Conclusion == status) && created(run.CreatedAt) {
			list = append(list, run)
		}
	}
	// Newest first, as GitHub lists runs.
	sort.Slice(list, func(i, j int) bool {
		if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
			return list[i].CreatedAt.After(list[j].CreatedAt)
		}
		return list[i].ID > list[j].ID
	})
	lo, hi := page(w, r, len(list))
	out := make([]map[string]any, 0, hi-lo)
	for _, run := range list[lo:hi] {
		out = append(out, map[string]any{
			"id": run.ID, "name": "ci", "status": run.Status, "conclusion": nullable(run.Conclusion),
			"run_attempt": run.RunAttempt, "event": "push", "head_branch": "main", "head_sha": headSHA(run.ID),
			"created_at": ts(run.CreatedAt), "updated_at": ts(run.UpdatedAt), "run_started_at": ts(run.RunStartedAt),
			"url":        s.apiURL("repos/" + run.Repo + "/actions/runs/" + strconv.FormatInt(run.ID, 10)),
			"jobs_url":   s.apiURL("repos/" + run.Repo + "/actions/runs/" + strconv.FormatInt(run.ID, 10) + "/jobs"),
			"repository": map[string]any{"full_name": run.Repo},
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "workflow_runs": out})
}

// jobJSON is a job as the jobs API and workflow_job deliveries show it. As
// on GitHub, a job nobody took has started_at = created_at and null runner
// fields.
func (s *Server) jobJSON(j *Job) map[string]any {
	started := j.StartedAt
	if started.IsZero() {
		started = j.CreatedAt
	}
	labels := j.Labels
	if labels == nil {
		labels = []string{}
	}
	id := strconv.FormatInt(j.ID, 10)
	return map[string]any{
		"id": j.ID, "run_id": j.RunID, "run_attempt": j.RunAttempt, "node_id": "CR_kwDO" + strconv.FormatInt(j.ID, 36),
		"name": j.Name, "workflow_name": "ci", "head_branch": "main", "head_sha": headSHA(j.RunID),
		"url":           s.apiURL("repos/" + j.Repo + "/actions/jobs/" + id),
		"html_url":      "https://github.com/" + j.Repo + "/actions/runs/" + strconv.FormatInt(j.RunID, 10) + "/job/" + id,
		"run_url":       s.apiURL("repos/" + j.Repo + "/actions/runs/" + strconv.FormatInt(j.RunID, 10)),
		"check_run_url": s.apiURL("repos/" + j.Repo + "/check-runs/" + id),
		"status":        j.Status, "conclusion": nullable(j.Conclusion), "labels": labels, "steps": []any{},
		"created_at": ts(j.CreatedAt), "started_at": ts(started), "completed_at": ts(j.CompletedAt),
		"runner_id": nullableID(j.RunnerID), "runner_name": nullable(j.RunnerName),
		"runner_group_id": nullableID(j.RunnerGroupID), "runner_group_name": nullable(j.RunnerGroupName),
	}
}

func nullableID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func headSHA(runID int64) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(runID, 10)))
	return hex.EncodeToString(sum[:20])
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	if filter != "" && filter != "latest" && filter != "all" {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: filter")
		return
	}
	s.mu.Lock()
	run := s.runOf(r)
	if run == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var list []*Job
	for _, jid := range run.JobIDs {
		j := s.st.jobs[jid]
		if filter == "all" || j.RunAttempt == run.RunAttempt {
			list = append(list, j)
		}
	}
	lo, hi := page(w, r, len(list))
	out := make([]map[string]any, 0, hi-lo)
	for _, j := range list[lo:hi] {
		out = append(out, s.jobJSON(j))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(list), "jobs": out})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	scope, ok := s.scope(r)
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	j, found := s.st.jobs[id]
	var out map[string]any
	if ok && found && j.Repo == scope {
		out = s.jobJSON(j)
	}
	s.mu.Unlock()
	writeFound(w, out)
}

// page applies per_page (default 30, max 100) and page (from 1) to a list of
// n items, sets the Link header, and returns the slice bounds.
func page(w http.ResponseWriter, r *http.Request, n int) (lo, hi int) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	if per > 100 {
		per = 100
	}
	p, err := strconv.Atoi(q.Get("page"))
	if err != nil || p < 1 {
		p = 1
	}
	last := (n + per - 1) / per
	if last < 1 {
		last = 1
	}
	lo = min((p-1)*per, n)
	hi = min(lo+per, n)

	prefix, _ := r.Context().Value(prefixKey).(string)
	link := func(pg int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: prefix + r.URL.Path}
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(pg))
		v.Set("per_page", strconv.Itoa(per))
		u.RawQuery = v.Encode()
		return `<` + u.String() + `>; rel="` + rel + `"`
	}
	var links []string
	if p < last {
		links = append(links, link(p+1, "next"), link(last, "last"))
	}
	if p > 1 {
		links = append(links, link(1, "first"), link(p-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	return lo, hi
}

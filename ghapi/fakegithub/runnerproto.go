package fakegithub

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"
)

// RunnerProtocolPath prefixes the fake runner protocol: how a fake runner
// (package fakerunner) takes and reports jobs, in place of the Actions
// service a real runner talks to. It is not part of GitHub's API; it needs
// no API token, only the encoded JIT config (connect) and then the session
// it returns. All requests are POSTs of JSON:
//
//	connect   {"jitconfig": ENCODED}            -> 200 ConnectAnswer
//	          401 the credential does not match; 404 the registration was
//	          deleted; 409 the JIT config was already used (it is single-use)
//	acquire   {"session": S, "wait_seconds": N} -> 200 {"job": AssignedJob}
//	          or 204 after up to N seconds (at most 30) without a job; 404
//	          when the registration was deleted meanwhile (the runner should
//	          exit, as a real one does)
//	complete  {"session": S, "job_id": J, "conclusion": "success"} -> 200
//
// acquire hands the runner the oldest queued job whose runs-on labels are
// all among the runner's, compared case-insensitively, in a repository the
// runner may serve (its repository, or one its runner group serves): the job
// goes in_progress with the runner's name, ID and group, the runner becomes
// busy and the in_progress webhook is sent. complete finishes the job with
// the conclusion, sends the completed webhook and removes the ephemeral
// runner's registration.
const RunnerProtocolPath = "/_fake/runner/"

// RunnerConfig is what a fake runner reads from the .runner file of its
// encoded JIT config.
type RunnerConfig struct {
	AgentID    int64  `json:"agentId"`
	AgentName  string `json:"agentName"`
	PoolID     int64  `json:"poolId"`
	PoolName   string `json:"poolName"`
	ServerURL  string `json:"serverUrl"` // the runner protocol's URL, ending in RunnerProtocolPath
	GitHubURL  string `json:"gitHubUrl"`
	WorkFolder string `json:"workFolder"`
	Ephemeral  bool   `json:"ephemeral"`
}

// DecodeJITConfig reads an encoded JIT config as the runner does: base64 of
// a JSON object of base64 file contents. It returns the .runner file.
func DecodeJITConfig(encoded string) (RunnerConfig, error) {
	files, err := decodeJITFiles(encoded)
	if err != nil {
		return RunnerConfig{}, err
	}
	var rc RunnerConfig
	if err := json.Unmarshal(files[".runner"], &rc); err != nil || rc.AgentID == 0 || rc.ServerURL == "" {
		return RunnerConfig{}, errors.New("the JIT config's .runner file is not valid")
	}
	return rc, nil
}

func decodeJITFiles(encoded string) (map[string][]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return nil, errors.New("the JIT config is not base64")
	}
	var files map[string]string
	if err := json.Unmarshal(raw, &files); err != nil {
		return nil, errors.New("the JIT config is not a JSON object of files")
	}
	out := map[string][]byte{}
	for name, v := range files {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("the JIT config's " + name + " is not base64")
		}
		out[name] = b
	}
	for _, name := range []string{".runner", ".credentials", ".credentials_rsaparams"} {
		if _, ok := out[name]; !ok {
			return nil, errors.New("the JIT config has no " + name)
		}
	}
	return out, nil
}

// ConnectAnswer is the fake's answer to a runner that connected.
type ConnectAnswer struct {
	Session    string   `json:"session"`
	RunnerID   int64    `json:"runner_id"`
	RunnerName string   `json:"runner_name"`
	Labels     []string `json:"labels"`
}

// AssignedJob is a job handed to a fake runner.
type AssignedJob struct {
	ID           int64    `json:"id"`
	RunID        int64    `json:"run_id"`
	RunAttempt   int64    `json:"run_attempt"`
	Name         string   `json:"name"`
	WorkflowName string   `json:"workflow_name"`
	Repository   string   `json:"repository"`
	Labels       []string `json:"labels"`
}

type protoRequest struct {
	JITConfig   string  `json:"jitconfig"`
	Session     string  `json:"session"`
	WaitSeconds float64 `json:"wait_seconds"`
	JobID       int64   `json:"job_id"`
	Conclusion  string  `json:"conclusion"`
}

func (s *Server) serveRunnerProtocol(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	var req protoRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	switch strings.TrimPrefix(r.URL.Path, RunnerProtocolPath) {
	case "connect":
		s.runnerConnect(w, req)
	case "acquire":
		s.runnerAcquire(w, r, req)
	case "complete":
		s.runnerComplete(w, req)
	default:
		writeError(w, http.StatusNotFound, "Not Found")
	}
}

func (s *Server) runnerConnect(w http.ResponseWriter, req protoRequest) {
	rc, err := DecodeJITConfig(req.JITConfig)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	files, _ := decodeJITFiles(req.JITConfig)
	var params struct {
		D string `json:"d"`
	}
	_ = json.Unmarshal(files[".credentials_rsaparams"], &params)

	s.mu.Lock()
	defer s.mu.Unlock()
	rn, ok := s.st.runners[rc.AgentID]
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "Runner registration "+rc.AgentName+" was not found: it was deleted.")
		return
	case rn.secret == "" || params.D != rn.secret:
		writeError(w, http.StatusUnauthorized, "The runner's credentials do not match its registration.")
		return
	case rn.connected:
		writeError(w, http.StatusConflict, "Conflict: this JIT configuration was already used (a JIT config is single-use).")
		return
	}
	rn.connected, rn.Status = true, "online"
	session := randomHex(16)
	s.st.sessions[session] = rn.ID
	s.bump()
	writeJSON(w, http.StatusOK, ConnectAnswer{Session: session, RunnerID: rn.ID, RunnerName: rn.Name, Labels: append([]string(nil), rn.Labels...)})
}

// sessionRunner finds the runner of a session; the caller holds s.mu.
func (s *Server) sessionRunner(session string) (*Runner, int, string) {
	id, ok := s.st.sessions[session]
	if !ok {
		return nil, http.StatusUnauthorized, "Unknown session."
	}
	rn, ok := s.st.runners[id]
	if !ok {
		delete(s.st.sessions, session)
		return nil, http.StatusNotFound, "The runner no longer exists on the server."
	}
	return rn, 0, ""
}

func (s *Server) runnerAcquire(w http.ResponseWriter, r *http.Request, req protoRequest) {
	wait := time.Duration(min(max(req.WaitSeconds, 0), 30) * float64(time.Second))
	timer := time.NewTimer(wait) // real time: how long this request may stay open
	defer timer.Stop()
	for {
		s.mu.Lock()
		rn, status, msg := s.sessionRunner(req.Session)
		if rn == nil {
			s.mu.Unlock()
			writeError(w, status, msg)
			return
		}
		if j := s.assignLocked(rn); j != nil {
			out := AssignedJob{ID: j.ID, RunID: j.RunID, RunAttempt: j.RunAttempt, Name: j.Name, WorkflowName: "ci",
				Repository: j.Repo, Labels: append([]string(nil), j.Labels...)}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"job": out})
			return
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		case <-s.done:
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
}

// assignLocked hands rn the oldest queued job it can take, if any; the
// caller holds s.mu.
func (s *Server) assignLocked(rn *Runner) *Job {
	if rn.Busy || rn.JobID != 0 {
		return nil
	}
	var candidates []*Job
	for _, j := range s.st.jobs {
		if j.Status == "queued" && labelsMatch(j.Labels, rn.Labels) && s.runnerServesLocked(rn, j.Repo) {
			candidates = append(candidates, j)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	sort.Slice(candidates, func(a, b int) bool {
		if !candidates[a].CreatedAt.Equal(candidates[b].CreatedAt) {
			return candidates[a].CreatedAt.Before(candidates[b].CreatedAt)
		}
		return candidates[a].ID < candidates[b].ID
	})
	j := candidates[0]
	now := s.now().UTC().Truncate(time.Second)
	j.Status, j.StartedAt = "in_progress", now
	j.RunnerID, j.RunnerName, j.RunnerGroupID, j.RunnerGroupName = rn.ID, rn.Name, rn.GroupID, "Default"
	if g := s.st.group(rn.GroupID); g != nil {
		j.RunnerGroupName = g.Name
	}
	rn.Busy, rn.Status, rn.JobID = true, "online", j.ID
	s.deriveRun(s.st.runs[j.RunID])
	s.emitJob("in_progress", j)
	s.bump()
	return j
}

// runnerServesLocked reports whether GitHub would hand rn a job of repo:
// a repository runner serves its repository; an organisation runner the
// repositories its group serves. The caller holds s.mu.
func (s *Server) runnerServesLocked(rn *Runner, repo string) bool {
	if rn.Scope != "" {
		return strings.EqualFold(rn.Scope, repo)
	}
	rp := s.st.repos[strings.ToLower(repo)]
	g := s.st.group(rn.GroupID)
	return rp != nil && !rp.Archived && g != nil && g.serves(rp)
}

// labelsMatch: every runs-on label is among the runner's, case-insensitively.
func labelsMatch(job, runner []string) bool {
	for _, l := range job {
		found := false
		for _, r := range runner {
			if strings.EqualFold(l, r) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (s *Server) runnerComplete(w http.ResponseWriter, req protoRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn, status, msg := s.sessionRunner(req.Session)
	if rn == nil {
		writeError(w, status, msg)
		return
	}
	j, ok := s.st.jobs[req.JobID]
	if !ok || rn.JobID != req.JobID || j.Status != "in_progress" {
		writeError(w, http.StatusConflict, "The runner does not hold this job.")
		return
	}
	conclusion := req.Conclusion
	switch conclusion {
	case "":
		conclusion = "success"
	case "success", "failure", "cancelled", "skipped", "neutral", "timed_out":
	default:
		writeError(w, http.StatusUnprocessableEntity, "Invalid conclusion "+conclusion)
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	j.Status, j.Conclusion, j.CompletedAt = "completed", conclusion, now
	s.deriveRun(s.st.runs[j.RunID])
	s.emitJob("completed", j)
	// An ephemeral runner is removed after its one job.
	delete(s.st.runners, rn.ID)
	delete(s.st.sessions, req.Session)
	s.bump()
	writeJSON(w, http.StatusOK, map[string]any{"job_id": j.ID, "conclusion": conclusion})
}

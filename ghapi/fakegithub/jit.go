package fakegithub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

func (s *Server) postJIT(w http.ResponseWriter, r *http.Request) {
	if v := s.cfg.EnterpriseVersion; v != "" && versionBefore(v, 3, 10) {
		writeError(w, http.StatusNotFound, "Not Found") // the endpoint came with GHES 3.10
		return
	}
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&raw); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	var req struct {
		Name          string   `json:"name"`
		RunnerGroupID *int64   `json:"runner_group_id"`
		Labels        []string `json:"labels"`
		WorkFolder    string   `json:"work_folder"`
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &req); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n"+err.Error())
		return
	}
	switch {
	case strings.TrimSpace(req.Name) == "":
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nmissing required key: name")
		return
	case req.RunnerGroupID == nil:
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nmissing required key: runner_group_id")
		return
	case len(req.Labels) == 0:
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nlabels must contain at least 1 item")
		return
	case len(req.Labels) > 100:
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nlabels must contain at most 100 items")
		return
	}
	if req.WorkFolder == "" {
		req.WorkFolder = "_work"
	}

	s.mu.Lock()
	scope, ok := s.scope(r)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	status, msg := s.jitRefusal(scope, *req.RunnerGroupID)
	if status != 0 {
		s.mu.Unlock()
		writeError(w, status, msg)
		return
	}
	gid := *req.RunnerGroupID
	for _, rn := range s.st.runners {
		if rn.Scope == scope && strings.EqualFold(rn.Name, req.Name) {
			s.mu.Unlock()
			writeError(w, http.StatusConflict, "Already exists - A runner with the name "+req.Name+" already exists.")
			return
		}
	}
	rn := &Runner{ID: s.st.id(), Name: req.Name, Scope: scope, Status: "offline", Labels: append([]string(nil), req.Labels...), GroupID: gid}
	rn.secret = randomHex(24)
	s.st.runners[rn.ID] = rn
	groupName := "Default"
	if g := s.st.group(gid); g != nil && scope == "" {
		groupName = g.Name
	}
	enc := s.encodedConfig(rn, groupName, req.WorkFolder)
	s.st.jits = append(s.st.jits, JITRequest{
		Scope: scope, Name: req.Name, Labels: append([]string(nil), req.Labels...),
		RunnerGroupID: gid, WorkFolder: req.WorkFolder, RunnerID: rn.ID, Encoded: enc,
	})
	out := runnerJSON(rn)
	s.bump()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"runner": out, "encoded_jit_config": enc})
}

// jitRefusal is GitHub's answer to a JIT registration it refuses for how the
// organisation, repository or group is set up (0 when it accepts); the
// caller holds s.mu.
func (s *Server) jitRefusal(scope string, gid int64) (int, string) {
	if s.st.actionsDisabled[""] {
		return http.StatusConflict, "GitHub Actions is disabled on this organization."
	}
	if scope != "" {
		if s.st.actionsDisabled[strings.ToLower(scope)] {
			return http.StatusConflict, "GitHub Actions is disabled on this repository."
		}
		if s.st.repoRunnersDisabled {
			return http.StatusForbidden, "Repository level self-hosted runners are disabled on this repository."
		}
		if gid != 1 { // repositories have no groups but the default one
			return http.StatusNotFound, "Not Found"
		}
		return 0, ""
	}
	g := s.st.group(gid)
	switch {
	case g == nil:
		return http.StatusNotFound, "Not Found"
	case g.Hosted:
		return http.StatusForbidden, "Runner group " + strconv.FormatInt(gid, 10) + " is for GitHub-hosted runners; self-hosted runners cannot be added to it."
	}
	return 0, ""
}

func versionBefore(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (ma < major || (ma == major && mi < minor))
}

// encodedConfig has the shape of a real encoded JIT config: base64 of a JSON
// object mapping .runner, .credentials and .credentials_rsaparams to the
// base64 of each file. .runner names the runner, its ID (agentId), its group
// and, as serverUrl, this server's runner protocol, so that a fake runner
// knows whom to call; the RSA parameters are random, and their private
// exponent is the credential the protocol checks. The caller holds s.mu.
func (s *Server) encodedConfig(rn *Runner, groupName, workFolder string) string {
	gitHubURL := "https://github.com/" + s.org
	if rn.Scope != "" {
		gitHubURL = "https://github.com/" + rn.Scope
	}
	runner := map[string]any{
		"agentId": rn.ID, "agentName": rn.Name, "poolId": rn.GroupID, "poolName": groupName,
		"disableUpdate": false, "ephemeral": true, "serverUrl": s.srv.URL + RunnerProtocolPath,
		"gitHubUrl": gitHubURL, "workFolder": workFolder, "useV2Flow": true,
	}
	creds := map[string]any{
		"scheme": "OAuth",
		"data": map[string]string{
			"clientId":                randomUUID(),
			"authorizationUrl":        s.srv.URL + RunnerProtocolPath + "token",
			"requireFipsCryptography": "True",
		},
	}
	rsa := map[string]string{
		"d": rn.secret, "dp": randomB64(64), "dq": randomB64(64), "exponent": "AQAB",
		"inverseQ": randomB64(64), "modulus": randomB64(128), "p": randomB64(64), "q": randomB64(64),
	}
	files := map[string]string{}
	for name, v := range map[string]any{".runner": runner, ".credentials": creds, ".credentials_rsaparams": rsa} {
		b, _ := json.Marshal(v)
		files[name] = base64.StdEncoding.EncodeToString(b)
	}
	b, _ := json.Marshal(files)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomUUID() string { return newGUID() }

package fakegithub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

func (s *Server) postJIT(w http.ResponseWriter, r *http.Request) {
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
	gid := *req.RunnerGroupID
	groupOK := false
	if scope != "" {
		groupOK = gid == 1 // repositories have no groups but the default one
	} else {
		for _, g := range s.st.groups {
			groupOK = groupOK || g.ID == gid
		}
	}
	if !groupOK {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	for _, rn := range s.st.runners {
		if rn.Scope == scope && strings.EqualFold(rn.Name, req.Name) {
			s.mu.Unlock()
			writeError(w, http.StatusConflict, "Already exists - A runner with the name "+req.Name+" already exists.")
			return
		}
	}
	rn := &Runner{ID: s.st.id(), Name: req.Name, Scope: scope, Status: "offline", Labels: append([]string(nil), req.Labels...), GroupID: gid}
	s.st.runners[rn.ID] = rn
	enc := encodedConfig(rn.Name)
	s.st.jits = append(s.st.jits, JITRequest{
		Scope: scope, Name: req.Name, Labels: append([]string(nil), req.Labels...),
		RunnerGroupID: gid, WorkFolder: req.WorkFolder, RunnerID: rn.ID, Encoded: enc,
	})
	out := runnerJSON(rn)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"runner": out, "encoded_jit_config": enc})
}

// encodedConfig imitates the shape of a real encoded JIT config: base64 of a
// JSON object of base64 file contents, with a random credential inside.
func encodedConfig(name string) string {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	files := map[string]string{
		".runner":      base64.StdEncoding.EncodeToString([]byte(`{"agentName":"` + name + `","workFolder":"_work"}`)),
		".credentials": base64.StdEncoding.EncodeToString([]byte(`{"scheme":"OAuthAccessToken","data":{"token":"` + hex.EncodeToString(secret) + `"}}`)),
	}
	b, _ := json.Marshal(files)
	return base64.StdEncoding.EncodeToString(b)
}

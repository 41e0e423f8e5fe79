package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-github/v62/github"

	"github.com/tartyci/tarty"
)

var errNoJobID = errors.New("workflow_job.id is missing")

// jobPayload is the part of a workflow_job delivery Tarty reads. The job and the
// organisation are go-github's own types; the repository is a two-field view,
// because github.Repository has some ninety pointer fields and decoding the
// payload's repository object into it made a delivery cost five times the
// allocations for nothing read (see BENCHMARKS.md).
type jobPayload struct {
	Action      string               `json:"action"`
	WorkflowJob *github.WorkflowJob  `json:"workflow_job"`
	Org         *github.Organization `json:"organization"`
	Repo        *repoView            `json:"repository"`
}

type repoView struct {
	FullName string `json:"full_name"`
	Owner    struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// decodeJob turns a workflow_job payload into a JobEvent. It keys off the
// top-level action, never workflow_job.status: a real action=queued delivery
// carries status=waiting.
func decodeJob(body []byte, deliveryID string) (tarty.JobEvent, error) {
	var p jobPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return tarty.JobEvent{}, fmt.Errorf("malformed workflow_job payload: %w", err)
	}
	job := p.WorkflowJob
	if job.GetID() == 0 {
		return tarty.JobEvent{}, errNoJobID
	}
	var repo repoView
	if p.Repo != nil {
		repo = *p.Repo
	}
	org := p.Org.GetLogin()
	if org == "" {
		// User-owned repositories have no organization object.
		org = repo.Owner.Login
	}
	ev := tarty.JobEvent{
		Source:       tarty.SourceWebhook,
		Action:       tarty.JobAction(p.Action),
		JobID:        job.GetID(),
		RunID:        job.GetRunID(),
		RunAttempt:   job.GetRunAttempt(),
		Status:       job.GetStatus(),
		Labels:       job.Labels,
		Repository:   repo.FullName,
		Organization: org,
		RunnerName:   job.GetRunnerName(),
		RunnerID:     job.GetRunnerID(),
		CreatedAt:    job.GetCreatedAt().Time,
		DeliveryID:   deliveryID,
	}
	// A queued job's started_at equals its created_at (GitHub fills it in
	// early): only a job a runner took has really started.
	if ev.Action == tarty.ActionInProgress || ev.Action == tarty.ActionCompleted {
		ev.StartedAt = job.GetStartedAt().Time
	}
	return ev, nil
}

// scope says whether a job belongs to the configured organisation and, when one
// is set, repository (compared case-insensitively, as GitHub logins are).
type scope struct {
	org  string
	repo string // "org/app" or "" for every repository
}

func (s scope) contains(ev tarty.JobEvent) bool {
	if !strings.EqualFold(ev.Organization, s.org) {
		return false
	}
	return s.repo == "" || strings.EqualFold(ev.Repository, s.repo)
}

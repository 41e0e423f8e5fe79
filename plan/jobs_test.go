package plan

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const goodLines = `{"id":1,"repository":"acme/app","labels":["self-hosted","macOS","tarty"],"created_at":"2026-11-20T09:14:02Z","started_at":"2026-11-20T09:14:31Z","completed_at":"2026-11-20T09:22:47Z","conclusion":"success","runner_name":"tarty-mac1-3f2a9c1e"}

{"id":2,"labels":["tarty"],"created_at":"2026-11-20T10:00:00+01:00","started_at":null,"completed_at":"2026-11-20T09:01:00Z","conclusion":"cancelled","runner_name":null}
{"id":3,"labels":["tarty"],"created_at":"2026-11-20T09:30:00.5Z","started_at":"2026-11-20T09:30:10Z"}` + "\r\n"

func TestPlanReadJobs(t *testing.T) {
	jobs, err := ReadJobs(strings.NewReader(goodLines), "jobs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v.UTC() }
	want := []Job{
		{ID: 1, Repository: "acme/app", Labels: []string{"self-hosted", "macOS", "tarty"}, CreatedAt: at("2026-11-20T09:14:02Z"),
			StartedAt: at("2026-11-20T09:14:31Z"), CompletedAt: at("2026-11-20T09:22:47Z"), Conclusion: "success", RunnerName: "tarty-mac1-3f2a9c1e"},
		{ID: 2, Labels: []string{"tarty"}, CreatedAt: at("2026-11-20T09:00:00Z"), CompletedAt: at("2026-11-20T09:01:00Z"), Conclusion: "cancelled"},
		{ID: 3, Labels: []string{"tarty"}, CreatedAt: at("2026-11-20T09:30:00.5Z"), StartedAt: at("2026-11-20T09:30:10Z")},
	}
	if !reflect.DeepEqual(jobs, want) {
		t.Fatalf("jobs:\n%+v\nwant:\n%+v", jobs, want)
	}
	// What WriteJobs writes, ReadJobs reads back.
	var b bytes.Buffer
	if err := WriteJobs(&b, jobs); err != nil {
		t.Fatal(err)
	}
	again, err := ReadJobs(&b, "")
	if err != nil || !reflect.DeepEqual(again, jobs) {
		t.Fatalf("round trip: %v\n%+v", err, again)
	}
}

func TestPlanReadJobsBadInput(t *testing.T) {
	const ok = `{"id":1,"labels":["tarty"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:30Z","completed_at":"2026-11-20T09:05:00Z"}`
	tests := []struct {
		name  string
		input string
		want  []string // each must appear in the error
	}{
		{"not JSON", ok + "\nid=2 labels=tarty\n", []string{"jobs.jsonl:2:", "not a JSON object"}},
		{"cut short", ok + "\n" + `{"id":2,"labels":["tarty"]`, []string{"jobs.jsonl:2:", "not a whole JSON object"}},
		{"an array", `[1,2]`, []string{"jobs.jsonl:1:", "want a JSON object"}},
		{"missing id", `{"labels":["tarty"],"created_at":"2026-11-20T09:00:00Z"}`, []string{"jobs.jsonl:1:", "id: required"}},
		{"id a string", `{"id":"7","labels":["tarty"],"created_at":"2026-11-20T09:00:00Z"}`, []string{"jobs.jsonl:1:", "id: want a number, not string"}},
		{"labels a string", `{"id":7,"labels":"tarty","created_at":"2026-11-20T09:00:00Z"}`, []string{"jobs.jsonl:1:", "labels: want an array of strings, not string"}},
		{"no labels", `{"id":7,"labels":[],"created_at":"2026-11-20T09:00:00Z"}`, []string{"jobs.jsonl:1:", "labels: required"}},
		{"missing created_at", `{"id":7,"labels":["tarty"]}`, []string{"jobs.jsonl:1:", "created_at: required"}},
		{"bad time", ok + "\n\n" + `{"id":7,"labels":["tarty"],"created_at":"20/11/2026 09:00"}`,
			[]string{"jobs.jsonl:3:", `created_at: "20/11/2026 09:00" is not an RFC 3339 time`}},
		{"misspelt field", `{"id":7,"labels":["tarty"],"create_at":"2026-11-20T09:00:00Z"}`, []string{"jobs.jsonl:1:", `unknown field "create_at"`}},
		{"two values", ok + ` {"id":2}`, []string{"jobs.jsonl:1:", "more than one JSON value"}},
		{"duplicate id", ok + "\n" + ok, []string{"jobs.jsonl:2:", "id 1 is already on line 1"}},
		{"completed before created", `{"id":7,"labels":["tarty"],"created_at":"2026-11-20T09:00:00Z","started_at":"2026-11-20T09:00:00Z","completed_at":"2026-11-20T08:00:00Z"}`,
			[]string{"jobs.jsonl:1:", "completed_at is before created_at"}},
		{"ran but no started_at", `{"id":7,"labels":["tarty"],"created_at":"2026-11-20T09:00:00Z","completed_at":"2026-11-20T09:05:00Z","conclusion":"success"}`,
			[]string{"jobs.jsonl:1:", "started_at: required for a finished job that ran"}},
		{"a line too long", ok + "\n" + `{"id":2,"labels":["` + strings.Repeat("x", maxLine) + `"]}` + "\n" + ok,
			[]string{"jobs.jsonl:2: longer than", "jobs.jsonl:3: id 1 is already on line 1"}},
		{"several bad lines at once", "{}\n" + ok + "\nnope\n", []string{"jobs.jsonl:1: id: required", "jobs.jsonl:3: not a JSON object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := ReadJobs(strings.NewReader(tt.input), "jobs.jsonl")
			if err == nil {
				t.Fatalf("no error; jobs %+v", jobs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line == 0 {
				t.Errorf("error %v does not name a line", err)
			}
		})
	}
}

func TestPlanReadJobsStopsAfterTenBadLines(t *testing.T) {
	_, err := ReadJobs(strings.NewReader(strings.Repeat("nope\n", 50)), "f")
	if n := strings.Count(err.Error(), "f:"); n != maxErrors {
		t.Errorf("%d errors reported, want %d:\n%v", n, maxErrors, err)
	}
}

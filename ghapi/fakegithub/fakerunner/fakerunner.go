// Package fakerunner imitates the GitHub Actions runner's run.sh against the
// fake GitHub (package fakegithub), for end-to-end tests and the demo: build
// cmd/fakerunner and place it where the real run.sh would be.
//
// Like the real runner it takes its just-in-time config from
// ACTIONS_RUNNER_INPUT_JITCONFIG or --jitconfig, never from stdin (it never
// reads stdin). It connects to the server named in the config's .runner file
// (the fake's runner protocol, fakegithub.RunnerProtocolPath), waits for a job
// whose labels it carries, "runs" it, reports its completion and exits 0. A
// JIT config works once: a second run with it, or one whose registration
// was deleted, is refused (exit 1).
//
// Environment:
//
//	ACTIONS_RUNNER_INPUT_JITCONFIG  the encoded JIT config (or --jitconfig X)
//	FAKERUNNER_JOB_SECONDS          how long a job "runs" (default 1; fractions allowed)
//	FAKERUNNER_IDLE_SECONDS         how long to wait for a job before exiting 0 (default 300)
//	FAKERUNNER_CONCLUSION           the job's conclusion (default success)
package fakerunner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tartyci/tarty/ghapi/fakegithub"
)

// Version is the runner version the fake claims: the one the fake GitHub
// offers by default.
const Version = fakegithub.DefaultRunnerVersion

// Environment variables the fake runner reads.
const (
	EnvJITConfig  = "ACTIONS_RUNNER_INPUT_JITCONFIG"
	EnvJobSeconds = "FAKERUNNER_JOB_SECONDS"
	EnvIdle       = "FAKERUNNER_IDLE_SECONDS"
	EnvConclusion = "FAKERUNNER_CONCLUSION"
)

const (
	defaultJob  = time.Second
	defaultIdle = 300 * time.Second
	maxLongPoll = 30 * time.Second
)

// Main runs the fake runner with args (without the program name) and env,
// writing what the real runner would print to stdout and its errors to
// stderr, and returns the exit status: 0 when a job was run (or none came
// within the idle time, or the registration was deleted while it listened),
// 1 when it could not start or was refused. With the single argument
// --version it prints Version, as the real config.sh and run.sh do, so a
// copy of it can stand in for config.sh too.
func Main(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" { // as config.sh and run.sh answer it
		fmt.Fprintln(stdout, Version)
		return 0
	}
	jit, err := parseArgs(args, env)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	jobFor, err := seconds(env(EnvJobSeconds), defaultJob)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", EnvJobSeconds, err)
		return 1
	}
	idle, err := seconds(env(EnvIdle), defaultIdle)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", EnvIdle, err)
		return 1
	}
	conclusion := strings.TrimSpace(env(EnvConclusion))
	if conclusion == "" {
		conclusion = "success"
	}
	rc, err := fakegithub.DecodeJITConfig(jit)
	if err != nil {
		fmt.Fprintf(stderr, "Invalid JIT configuration: %v\n", err)
		return 1
	}
	r := &runner{base: strings.TrimSuffix(rc.ServerURL, "/") + "/", client: &http.Client{Timeout: maxLongPoll + 15*time.Second}}

	var conn fakegithub.ConnectAnswer
	if status, err := r.post("connect", map[string]any{"jitconfig": jit}, &conn); err != nil || status != http.StatusOK {
		fmt.Fprintf(stderr, "Failed to connect runner %s: %s\n", rc.AgentName, describe(status, err))
		return 1
	}
	fmt.Fprintf(stdout, "\n√ Connected to GitHub\n\nCurrent runner version: '%s'\n", Version)
	fmt.Fprintf(stdout, "%s: Listening for Jobs\n", stamp())

	deadline := time.Now().Add(idle)
	var job fakegithub.AssignedJob
	for {
		left := time.Until(deadline)
		if left <= 0 {
			fmt.Fprintf(stdout, "%s: No job within %s; exiting\n", stamp(), idle)
			return 0
		}
		var got struct {
			Job fakegithub.AssignedJob `json:"job"`
		}
		status, err := r.post("acquire", map[string]any{"session": conn.Session, "wait_seconds": min(left, maxLongPoll).Seconds()}, &got)
		switch {
		case status == http.StatusOK && err == nil:
			job = got.Job
		case status == http.StatusNoContent:
			continue
		case status == http.StatusNotFound:
			// The registration was deleted while the runner listened.
			fmt.Fprintf(stdout, "%s: The runner no longer exists on the server\n", stamp())
			return 0
		default:
			fmt.Fprintf(stderr, "Failed to get a job: %s\n", describe(status, err))
			return 1
		}
		break
	}

	fmt.Fprintf(stdout, "%s: Running job: %s\n", stamp(), job.Name)
	time.Sleep(jobFor) // the "work" of the job
	if status, err := r.post("complete", map[string]any{"session": conn.Session, "job_id": job.ID, "conclusion": conclusion}, nil); err != nil || status != http.StatusOK {
		fmt.Fprintf(stderr, "Failed to report job %d: %s\n", job.ID, describe(status, err))
		return 1
	}
	result := "Succeeded"
	if conclusion != "success" {
		result = strings.ToUpper(conclusion[:1]) + conclusion[1:]
	}
	fmt.Fprintf(stdout, "%s: Job %s completed with result: %s\n", stamp(), job.Name, result)
	return 0
}

func parseArgs(args []string, env func(string) string) (string, error) {
	jit := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--jitconfig":
			if i+1 >= len(args) {
				return "", errors.New("--jitconfig needs a value")
			}
			i++
			jit = args[i]
		case strings.HasPrefix(a, "--jitconfig="):
			jit = strings.TrimPrefix(a, "--jitconfig=")
		default:
			return "", fmt.Errorf("unknown argument %q (the fake runner takes only --jitconfig)", a)
		}
	}
	if jit == "" {
		jit = env(EnvJITConfig)
	}
	if strings.TrimSpace(jit) == "" {
		return "", errors.New("Not configured. Run config.(sh/cmd) to configure the runner, or pass --jitconfig or " + EnvJITConfig + ".")
	}
	return jit, nil
}

func seconds(v string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func stamp() string { return time.Now().UTC().Format("2006-01-02 15:04:05Z") }

type runner struct {
	base   string
	client *http.Client
}

// post sends a protocol request and decodes a 200's body into out; a non-200
// answer's message is kept for describe.
func (r *runner) post(verb string, body any, out any) (int, error) {
	b, _ := json.Marshal(body)
	resp, err := r.client.Post(r.base+verb, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return resp.StatusCode, &answerError{e.Message}
		}
		return resp.StatusCode, nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("bad answer to %s: %w", verb, err)
		}
	}
	return resp.StatusCode, nil
}

type answerError struct{ msg string }

func (e *answerError) Error() string { return e.msg }

func describe(status int, err error) string {
	var ae *answerError
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("%d %s: %s", status, http.StatusText(status), ae.msg)
	case err != nil:
		return err.Error()
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

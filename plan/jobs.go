package plan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Job is one job of the history, and one line of the --jobs format (JSON
// lines: one object a line, blank lines ignored):
//
//	{"id":1234,"repository":"acme/app","labels":["self-hosted","macOS","tarty"],
//	 "created_at":"2026-11-20T09:14:02Z","started_at":"2026-11-20T09:14:31Z",
//	 "completed_at":"2026-11-20T09:22:47Z","conclusion":"success","runner_name":"tarty-mac1-3f2a9c1e"}
//
// id, labels and created_at are required; completed_at is null or absent for
// a job not finished yet (left out); started_at is required for a finished
// job that ran (any conclusion but cancelled and skipped); times are RFC 3339.
// repository, conclusion, runner_name, run_id, run_attempt and name are
// optional. Any other field is an error (a misspelt field would otherwise be
// lost quietly).
type Job struct {
	ID          int64     `json:"id"`
	Repository  string    `json:"repository,omitempty"`
	Labels      []string  `json:"labels"`
	CreatedAt   time.Time `json:"created_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	Conclusion  string    `json:"conclusion,omitempty"`
	RunnerName  string    `json:"runner_name,omitempty"`
	RunID       int64     `json:"run_id,omitempty"`
	RunAttempt  int       `json:"run_attempt,omitempty"`
	Name        string    `json:"name,omitempty"`
}

// maxLine bounds one line of the --jobs format.
const maxLine = 1 << 20

// maxErrors is how many bad lines are reported before the reader gives up.
const maxErrors = 10

// LineError is a bad line of a --jobs file.
type LineError struct {
	File string // "" for a reader with no name
	Line int
	Err  error
}

func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ReadJobsFile reads a --jobs file.
func ReadJobsFile(path string) ([]Job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadJobs(f, path)
}

// ReadJobs reads jobs in the --jobs format from r; name labels errors. Every
// error names its line; up to ten bad lines are reported at once.
func ReadJobs(r io.Reader, name string) ([]Job, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		jobs []Job
		errs []error
		seen = map[int64]int{} // id -> line
	)
	bad := func(line int, err error) bool {
		errs = append(errs, &LineError{File: name, Line: line, Err: err})
		return len(errs) >= maxErrors
	}
	for line := 1; ; line++ {
		text, err := readLine(br)
		if errors.Is(err, errLineTooLong) {
			if bad(line, err) {
				break
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(bytes.TrimSpace(text)) > 0 {
			j, perr := parseJob(text)
			switch {
			case perr != nil:
				if bad(line, perr) {
					return nil, errors.Join(errs...)
				}
			case seen[j.ID] != 0:
				if bad(line, fmt.Errorf("id %d is already on line %d", j.ID, seen[j.ID])) {
					return nil, errors.Join(errs...)
				}
			default:
				seen[j.ID] = line
				jobs = append(jobs, j)
			}
		}
		if err != nil { // io.EOF
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return jobs, nil
}

var errLineTooLong = fmt.Errorf("longer than %d bytes", maxLine)

// readLine returns the next line without its end; io.EOF with the last one.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine+1 {
			// Skip the rest of the line so the next one is read whole.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

// jobLine is a line as written: times as strings, so that their errors can
// be said plainly, and pointers for the required fields.
type jobLine struct {
	ID          *int64   `json:"id"`
	Repository  string   `json:"repository"`
	Labels      []string `json:"labels"`
	CreatedAt   *string  `json:"created_at"`
	StartedAt   *string  `json:"started_at"`
	CompletedAt *string  `json:"completed_at"`
	Conclusion  string   `json:"conclusion"`
	RunnerName  string   `json:"runner_name"`
	RunID       int64    `json:"run_id"`
	RunAttempt  int      `json:"run_attempt"`
	Name        string   `json:"name"`
}

func parseJob(text []byte) (Job, error) {
	var l jobLine
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Job{}, jsonProblem(err)
	}
	if dec.More() {
		return Job{}, errors.New("more than one JSON value on the line")
	}
	j := Job{Repository: l.Repository, Labels: l.Labels, Conclusion: strings.ToLower(strings.TrimSpace(l.Conclusion)),
		RunnerName: l.RunnerName, RunID: l.RunID, RunAttempt: l.RunAttempt, Name: l.Name}
	if l.ID == nil || *l.ID <= 0 {
		return Job{}, errors.New("id: required, a positive number")
	}
	j.ID = *l.ID
	if len(l.Labels) == 0 {
		return Job{}, errors.New("labels: required, the job's runs-on labels")
	}
	var err error
	if j.CreatedAt, err = parseTime("created_at", l.CreatedAt, true); err != nil {
		return Job{}, err
	}
	if j.StartedAt, err = parseTime("started_at", l.StartedAt, false); err != nil {
		return Job{}, err
	}
	if j.CompletedAt, err = parseTime("completed_at", l.CompletedAt, false); err != nil {
		return Job{}, err
	}
	switch {
	case !j.CompletedAt.IsZero() && j.CompletedAt.Before(j.CreatedAt):
		return Job{}, errors.New("completed_at is before created_at")
	case !j.CompletedAt.IsZero() && !j.StartedAt.IsZero() && j.CompletedAt.Before(j.StartedAt):
		return Job{}, errors.New("completed_at is before started_at")
	case !j.CompletedAt.IsZero() && j.StartedAt.IsZero() && j.Conclusion != "cancelled" && j.Conclusion != "skipped":
		return Job{}, errors.New("started_at: required for a finished job that ran (how long it ran is completed_at - started_at)")
	}
	return j, nil
}

func parseTime(field string, v *string, required bool) (time.Time, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		if required {
			return time.Time{}, fmt.Errorf("%s: required, an RFC 3339 time such as 2026-11-20T09:14:02Z", field)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*v))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-11-20T09:14:02Z", field, *v)
	}
	return t.UTC(), nil
}

// jsonProblem says what encoding/json found in words about the line.
func jsonProblem(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not a JSON object: %v (at byte %d)", syn, syn.Offset)
	case errors.As(err, &typ):
		want := typ.Type.String()
		switch {
		case strings.Contains(want, "int"):
			want = "a number"
		case strings.Contains(want, "[]string"):
			want = "an array of strings"
		case strings.Contains(want, "string"):
			want = "a string"
		}
		field := typ.Field
		if field == "" {
			return fmt.Errorf("want a JSON object, not %s", typ.Value)
		}
		return fmt.Errorf("%s: want %s, not %s", field, want, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not a whole JSON object")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return errors.New(msg)
}

// WriteJobs writes jobs in the --jobs format.
func WriteJobs(w io.Writer, jobs []Job) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range jobs {
		if err := enc.Encode(&jobs[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

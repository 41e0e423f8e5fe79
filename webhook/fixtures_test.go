package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/tartyci/tarty"
)

// TestFixtures sends each of GitHub's example payloads, byte for byte, signed as
// GitHub signs them, and checks the HMAC against the one in the reference and
// the JobEvent that comes out.
func TestFixtures(t *testing.T) {
	ts := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		file  string
		hmac  string // reference/github.md section 1.4
		event string
		org   string // the server's organisation
		code  int
		want  *tarty.JobEvent
	}{
		{fxQueued, "0ce5ec16f053d1ab9809b88f5bf0e2539995bb32571d97439afb60cd32f391ba", "workflow_job", "Octocoders", 202,
			&tarty.JobEvent{Action: "queued", JobID: 289782451, RunID: 2202229078, RunAttempt: 1, Status: "queued",
				RunnerID: 5, Labels: []string{"ubuntu-latest"}, Repository: "Codertocat/Hello-World", Organization: "Octocoders",
				RunnerName: "GitHub Actions 5", // a docs artefact: real queued events have none
				CreatedAt:  ts("2021-09-13T02:21:13Z")}},
		{fxDeployment, "d5328fc6bff3ae1d96c8abaeaba45d428e57891f8bd9ae5259f7ed0bb54bca2e", "workflow_job", "lineville", 202,
			// action=queued although workflow_job.status=waiting: the action wins.
			&tarty.JobEvent{Action: "queued", JobID: 12877621891, RunID: 4747967848, RunAttempt: 1, Status: "waiting",
				Labels: []string{"self-hosted", "k8s"}, Repository: "lineville/elastic-machines-testing",
				Organization: "lineville", CreatedAt: ts("2023-04-19T21:12:12Z")}},
		{fxInProgress, "d9c7dd02a856a2d22f0a19de290689e78f9592eb6e59d06808b83fe714d8b4a8", "workflow_job", "wolfy1339", 202,
			// No organization object (user-owned repository): the owner's login.
			&tarty.JobEvent{Action: "in_progress", JobID: 14541957942, RunID: 5373506832, RunAttempt: 1, Status: "in_progress",
				RunnerID: 6, StartedAt: ts("2023-06-26T03:31:36Z"),
				Labels: []string{"ubuntu-latest"}, Repository: "wolfy1339/github-events-schemas",
				Organization: "wolfy1339", RunnerName: "GitHub Actions 6", CreatedAt: ts("2023-06-26T03:31:29Z")}},
		{fxCompleted, "2511d8d1e48c4a1286c50d50b1ac974ec354864d1ce9be89d7cfc88a15ef0d9b", "workflow_job", "octocoders", 202,
			&tarty.JobEvent{Action: "completed", JobID: 289782451, RunID: 2202229078, RunAttempt: 1, Status: "completed",
				RunnerID: 5, StartedAt: ts("2021-08-05T10:34:58Z"),
				Labels: []string{"ubuntu-latest"}, Repository: "Codertocat/Hello-World", Organization: "Octocoders",
				RunnerName: "GitHub Actions 5", CreatedAt: ts("2021-08-05T10:33:58Z")}},
		{fxWaiting, "4cae9a381940bbe073faa11c92fbeef705ac242da3d22a4f462375ebeaa66533", "workflow_job", "lineville", 202,
			&tarty.JobEvent{Action: "waiting", JobID: 12877621891, RunID: 4747967848, RunAttempt: 1, Status: "waiting",
				Labels: []string{"self-hosted", "k8s"}, Repository: "lineville/elastic-machines-testing",
				Organization: "lineville", CreatedAt: ts("2023-04-19T21:12:12Z")}},
		{fxPing, "72c3e8a58d50077e06d86ec7fdb6b64953a99f0106b704d434364693c5fc3ddd", "ping", "Octocoders", 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := fixture(t, tt.file)
			m := hmac.New(sha256.New, []byte(testSecret))
			m.Write(body)
			if got := hex.EncodeToString(m.Sum(nil)); got != tt.hmac {
				t.Fatalf("HMAC of the fixture = %s, the reference says %s (fixture not copied verbatim?)", got, tt.hmac)
			}
			env := startTestServer(t, func(o *Options) {
				o.Organization = tt.org
				// The fixtures' runs-on labels, made Tarty's for this test.
				o.Matcher = tarty.NewLabelMatcher([]string{"ubuntu-latest", "k8s"})
				if tt.want != nil { // the job's own time: GitHub's examples are years old
					o.Now = func() time.Time { return tt.want.CreatedAt.Add(time.Minute) }
				}
			})
			id := "fixture-" + tt.file
			a := env.send(t, delivery{event: tt.event, id: id, body: body, sig256: "sha256=" + tt.hmac})
			if a.code != tt.code {
				t.Fatalf("answer = %d %q, want %d", a.code, a.result, tt.code)
			}
			if tt.want == nil {
				noEvent(t, env.events)
				return
			}
			want := *tt.want
			want.Source, want.DeliveryID = tarty.SourceWebhook, id
			if got := nextEvent(t, env.events); !reflect.DeepEqual(got, want) {
				t.Errorf("event\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestGitHubTestVector checks the signer against GitHub's documented vector.
func TestGitHubTestVector(t *testing.T) {
	s := newSigner([]byte(testSecret))
	const vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if err := s.verify(vector, []byte("Hello, World!")); err != nil {
		t.Errorf("GitHub's test vector rejected: %v", err)
	}
	tests := []struct {
		name, header string
		body         string
		want         error
	}{
		{"other body", vector, "Hello, World?", errBadSignature},
		{"upper-case hex is the same MAC", "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17", "Hello, World!", nil},
		{"sha1 prefix", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "Hello, World!", errSignatureForm},
		{"upper-case prefix", "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "Hello, World!", errSignatureForm},
		{"truncated", vector[:len(vector)-2], "Hello, World!", errSignatureForm},
		{"trailing space", vector + " ", "Hello, World!", errSignatureForm},
		{"not hex", "sha256=" + string(make([]byte, 64)), "Hello, World!", errSignatureForm},
		{"empty", "", "", errSignatureForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.verify(tt.header, []byte(tt.body)); err != tt.want {
				t.Errorf("verify = %v, want %v", err, tt.want)
			}
		})
	}
}

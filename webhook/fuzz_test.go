package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tartyci/tarty"
)

// Signing modes of FuzzHandler (low three bits of mode).
const (
	fuzzSigned      = iota // correct X-Hub-Signature-256
	fuzzUnsigned           // no signature header
	fuzzWrongSecret        // sha256 with another secret
	fuzzSHA1Only           // correct legacy SHA-1 only
	fuzzRawHeader          // the fuzzer's own X-Hub-Signature-256
	fuzzOtherBytes         // correct signature of the body plus sigRaw
	fuzzBoth               // correct sha256 and a fuzzed SHA-1
	fuzzModes
)

// Other bits of mode: 0x08 a fresh delivery ID, 0x30 the target organisation,
// 0x40 Content-Type application/x-www-form-urlencoded, 0x80 the body sent as
// the payload field of a form (what GitHub sends for a form hook; with 0x40
// clear, a form body labelled JSON).
const (
	fuzzFreshID  = 0x08
	fuzzFormType = 0x40
	fuzzFormBody = 0x80
)

// FuzzHandler drives the handler with fuzzed bodies, headers and signatures,
// JSON and form-encoded. It must never panic, must answer 401 to anything not
// correctly signed (over the raw bytes sent, form or JSON), and must never
// forward an event from a request that was not correctly signed.
//
//	go test -run '^$' -fuzz=FuzzHandler -fuzztime=60s ./webhook/
func FuzzHandler(f *testing.F) {
	// One server per organisation of the fixtures, so they can all be forwarded.
	orgs := []string{"Octocoders", "wolfy1339", "lineville"}
	type target struct {
		h      http.Handler
		events chan tarty.JobEvent
	}
	targets := make([]target, len(orgs))
	for i, org := range orgs {
		events := make(chan tarty.JobEvent, 1)
		s, err := New(Options{
			Secret:       []byte(testSecret),
			Organization: org,
			Matcher:      tarty.NewLabelMatcher([]string{"ubuntu-latest", "k8s", "tarty"}),
			Events:       events,
			Registerer:   prometheus.NewRegistry(),
			Now:          fixtureNow, // no fixture is stale, so they can all be forwarded
		})
		if err != nil {
			f.Fatal(err)
		}
		targets[i] = target{h: s.Handler(), events: events}
	}

	for i, name := range []string{fxQueued, fxDeployment, fxInProgress, fxCompleted, fxWaiting} {
		body := fixture(f, name)
		org := uint8([]int{0, 2, 1, 0, 2}[i]) << 4
		for mode := uint8(0); mode < fuzzModes; mode++ {
			f.Add(body, "workflow_job", "seed-"+name, org|mode|fuzzFreshID, "sha256=00")
			f.Add(body, "workflow_job", "seed-form-"+name, org|mode|fuzzFreshID|fuzzFormType|fuzzFormBody, "sha256=00")
		}
	}
	f.Add(fixture(f, fxPing), "ping", "seed-ping", uint8(fuzzSigned), "")
	f.Add(fixture(f, fxPing), "ping", "seed-ping-form", uint8(fuzzSigned|fuzzFormType|fuzzFormBody), "")
	f.Add([]byte("payload=%7B%7D&payload=x"), "workflow_job", "", uint8(fuzzSigned|fuzzFormType), "")
	f.Add(tartyJob(f, "queued", 3), "workflow_job", "", uint8(fuzzSigned|fuzzFormBody), "")
	f.Add(tartyJob(f, "queued", 1), "workflow_job", "", uint8(fuzzSigned), "")
	f.Add(tartyJob(f, "completed", 2), "workflow_job", "x", uint8(fuzzRawHeader),
		sign(testSecret, tartyJob(f, "completed", 2)))
	f.Add([]byte(`{"action":"queued","workflow_job":{"id":1,"labels":["tarty"]},"organization":{"login":"Octocoders"}}`),
		"workflow_job", "", uint8(fuzzSigned), "")
	f.Add([]byte(`{"action":"queued","workflow_job":{"id":1,"labels":["tarty"]},"organization":{"login":"Octocoders"}}`),
		"workflow_job", "", uint8(fuzzOtherBytes), " ")

	var unique atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte, event, id string, mode uint8, sigRaw string) {
		tgt := targets[int(mode>>4&0x03)%len(targets)]
		if mode&fuzzFreshID != 0 { // a fresh delivery ID, so dedupe does not hide the forward path
			id = fmt.Sprint(id, "-", unique.Add(1))
		}
		if mode&fuzzFormBody != 0 {
			body = formBody(body) // from here on, body is the raw bytes sent and signed
		}
		req := httptest.NewRequest(http.MethodPost, DefaultPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if mode&fuzzFormType != 0 {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if event != "" {
			req.Header["X-Github-Event"] = []string{event}
		}
		if id != "" {
			req.Header["X-Github-Delivery"] = []string{id}
		}
		switch mode & 0x07 % fuzzModes {
		case fuzzSigned:
			req.Header.Set(hdrSig256, sign(testSecret, body))
		case fuzzUnsigned:
		case fuzzWrongSecret:
			req.Header.Set(hdrSig256, sign(testSecret+"!", body))
		case fuzzSHA1Only:
			req.Header.Set(hdrSigLegacy, signSHA1(testSecret, body))
		case fuzzRawHeader:
			req.Header[hdrSig256] = []string{sigRaw}
		case fuzzOtherBytes:
			req.Header.Set(hdrSig256, sign(testSecret, append(append([]byte(nil), body...), sigRaw...)))
		case fuzzBoth:
			req.Header.Set(hdrSig256, sign(testSecret, body))
			req.Header[hdrSigLegacy] = []string{sigRaw}
		}
		signed := correctlySigned(req.Header.Get(hdrSig256), body)

		rec := httptest.NewRecorder()
		tgt.h.ServeHTTP(rec, req)

		var forwarded *tarty.JobEvent
		select {
		case ev := <-tgt.events:
			forwarded = &ev
		default:
		}
		code := rec.Code
		if forwarded != nil && !signed {
			t.Fatalf("forwarded %+v from a request not correctly signed (mode %d, answer %d)", *forwarded, mode&0x07, code)
		}
		// The size limit is checked before the signature, so only an oversized
		// body may get anything but 401 unsigned.
		if !signed && code != http.StatusUnauthorized && !(code == http.StatusRequestEntityTooLarge && len(body) > MaxBodyBytes) {
			t.Fatalf("request not correctly signed answered %d, want 401", code)
		}
		switch code {
		case 200, 202, 400, 401, 413, 503:
		default:
			t.Fatalf("unexpected status %d", code)
		}
		if forwarded != nil {
			if code != http.StatusAccepted || forwarded.Source != tarty.SourceWebhook ||
				!forwarded.Action.Valid() || forwarded.JobID == 0 || forwarded.DeliveryID != id {
				t.Fatalf("bad forward: answer %d, event %+v", code, *forwarded)
			}
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer body is not JSON: %q", rec.Body.Bytes())
		}
	})
}

// correctlySigned is the fuzz oracle, written apart from signer: header is
// "sha256=" and the hex of HMAC-SHA256(testSecret, body).
func correctlySigned(header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

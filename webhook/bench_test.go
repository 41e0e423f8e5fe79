package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tartyci/tarty"
)

// BenchmarkDelivery measures one signed workflow_job queued delivery (GitHub's
// real 13 KB with-deployment payload, accepted and handed over) through the
// echo Server's Handler, against a bare net/http handler that only checks the
// HMAC and decodes the same JSON into the same type. Both get the same request
// and recorder, so the difference is what the Server adds: routing, size limit,
// dedupe, scope and label checks, metrics, logging and the hand-off.
//
//	go test -run '^$' -bench BenchmarkDelivery -benchmem -count 10 ./webhook/
func BenchmarkDelivery(b *testing.B) {
	body := fixture(b, fxDeployment)
	sig := sign(testSecret, body)

	events := make(chan tarty.JobEvent, 1024)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range events {
		}
	}()
	defer func() { close(events); <-drained }()
	srv, err := New(Options{
		Secret:       []byte(testSecret),
		Organization: "lineville",
		Matcher:      tarty.NewLabelMatcher([]string{"k8s"}),
		Events:       events,
		Registerer:   prometheus.NewRegistry(),
		// The payload's job was created on 2023-04-19: an hour later it is fresh.
		Now: func() time.Time { return time.Date(2023, 4, 19, 22, 12, 12, 0, time.UTC) },
	})
	if err != nil {
		b.Fatal(err)
	}

	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"echo", srv.Handler()},
		{"bare", bareHandler([]byte(testSecret))},
	}
	for _, hh := range handlers {
		b.Run("handler="+hh.name, func(b *testing.B) {
			rd := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, DefaultPath, rd)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "workflow_job")
			req.Header.Set("X-Hub-Signature-256", sig)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				rd.Reset(body)
				// A fresh delivery ID each time: every delivery is new work.
				req.Header["X-Github-Delivery"] = []string{"bench-" + strconv.Itoa(i)}
				rec := httptest.NewRecorder()
				hh.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusAccepted {
					b.Fatalf("answer %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// bareHandler is the least a webhook endpoint can do: read the body, check the
// HMAC, decode the JSON. It is the benchmark's baseline, not production code.
func bareHandler(secret []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil || len(body) > MaxBodyBytes {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p jobPayload
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// BenchmarkDecode compares decoding a workflow_job payload into jobPayload
// (go-github's WorkflowJob and Organization, a two-field repository view) with
// go-github's ParseWebHook into the full WorkflowJobEvent.
func BenchmarkDecode(b *testing.B) {
	body := fixture(b, fxDeployment)
	b.Run("into=jobPayload", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJob(body, "id"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("into=WorkflowJobEvent", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := github.ParseWebHook("workflow_job", body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBodyLimit: 5 MiB is accepted, one byte more is 413, whether the length
// is declared up front or only found while reading.
func TestBodyLimit(t *testing.T) {
	env := startTestServer(t, nil)
	pad := func(body []byte, size int) []byte {
		// JSON allows trailing whitespace, so the padded body is still valid.
		return append(body, bytes.Repeat([]byte(" "), size-len(body))...)
	}
	job := tartyJob(t, "queued", 5)
	exact := pad(job, MaxBodyBytes)
	over := pad(job, MaxBodyBytes+1)
	sixMiB := pad(job, 6<<20)

	tests := []struct {
		name    string
		body    []byte
		chunked bool // no Content-Length: the limit is found while reading
		want    int
	}{
		{"exactly 5 MiB", exact, false, 202},
		{"5 MiB + 1 declared", over, false, 413},
		{"6 MiB declared", sixMiB, false, 413},
		{"6 MiB chunked", sixMiB, true, 413},
		{"5 MiB + 1 chunked", over, true, 413},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := delivery{event: "workflow_job", id: fmt.Sprint("size-", i), body: tt.body}.request(t, env.base)
			if tt.chunked {
				req.Body = io.NopCloser(bytes.NewReader(tt.body)) // hides the length
				req.ContentLength = -1
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			a := readAnswer(t, resp.StatusCode, resp.Header, resp.Body)
			resp.Body.Close()
			if a.code != tt.want {
				t.Fatalf("answer = %d %q, want %d", a.code, a.result, tt.want)
			}
			if tt.want == 202 {
				nextEvent(t, env.events)
			}
			noEvent(t, env.events)
		})
	}
}

// TestSlowClients: a client that never finishes its headers, or its body, is
// cut off by the server's timeouts rather than holding a connection open. Each
// case shortens only the timeout it is about; the test's own deadline is below
// the defaults of the others, so an unwired timeout fails it.
func TestSlowClients(t *testing.T) {
	tests := []struct {
		name string
		opts func(*Options)
		send string
	}{
		{"headers never finish (slow loris)",
			func(o *Options) { o.ReadHeaderTimeout = 100 * time.Millisecond },
			"POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: workflow_job\r\n"},
		{"body never finishes",
			func(o *Options) { o.ReadTimeout = 200 * time.Millisecond },
			"POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: workflow_job\r\n" +
				"X-Hub-Signature-256: sha256=00\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"action\":"},
		{"idle keep-alive connection",
			func(o *Options) { o.IdleTimeout = 100 * time.Millisecond },
			"POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nContent-Length: 2\r\n\r\n{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startTestServer(t, tt.opts)
			addr := env.srv.Addr().String()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.send); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection long before this deadline,
			// which only keeps a broken server from hanging the test.
			deadline := time.Now().Add(4 * time.Second)
			if err := conn.SetReadDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			var resp *http.Response
			if strings.HasSuffix(tt.send, "\r\n") { // headers unfinished: nothing to answer
				_, err = r.ReadByte()
			} else if resp, err = http.ReadResponse(r, nil); err == nil {
				// The handler saw the read fail; it may answer, then the
				// connection must be closed.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_, err = r.ReadByte()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open at the test's deadline: %v", err)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Fatalf("want the server to close the connection, got %v", err)
			}
			if resp != nil && resp.StatusCode/100 == 2 {
				t.Errorf("a truncated or unsigned request was answered %s", resp.Status)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

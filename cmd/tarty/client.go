package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tartyci/tarty/scheduler"
)

// adminClient talks to a running daemon's admin listener.
type adminClient struct {
	base string
	http *http.Client
}

func newAdminClient(listen string) *adminClient {
	return &adminClient{base: "http://" + listen, http: &http.Client{Timeout: 20 * time.Second}}
}

// errNoDaemon means nothing answers on the admin listener.
var errNoDaemon = errors.New("no daemon answers")

// refusedError is a 409 from the daemon: the request was understood and
// turned down, with its reason.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return e.reason }

func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", errNoDaemon, c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	var reason struct {
		Reason string `json:"reason"`
	}
	switch {
	case resp.StatusCode == http.StatusConflict:
		_ = json.Unmarshal(body, &reason)
		return &refusedError{reason: reason.Reason}
	case resp.StatusCode >= 300:
		_ = json.Unmarshal(body, &reason)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(reason.Reason))
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *adminClient) status(ctx context.Context) (scheduler.Status, error) {
	var st scheduler.Status
	err := c.do(ctx, http.MethodGet, "/status", &st)
	return st, err
}

func (c *adminClient) post(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodPost, path, nil)
}

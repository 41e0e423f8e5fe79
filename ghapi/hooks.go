package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"
)

// Webhooks and their deliveries, so that Tarty can ask GitHub to redeliver
// what failed while it was down (GitHub never retries a failed delivery by
// itself, and keeps deliveries for redelivery three days on github.com).
//
// Reading an organisation's hooks and redelivering needs the organisation
// permission "Webhooks: read and write" (fine-grained token or App) or the
// classic scope admin:org_hook; a repository's, the repository permission
// "Webhooks: read and write" or the classic admin:repo_hook (or repo).
// Without it GitHub answers 404 (classic) or 403: the errors then match
// ErrHookAccess and carry the permission to grant in their Fix.

var (
	// ErrHookAccess: the credentials may not read the webhooks or ask for
	// a redelivery.
	ErrHookAccess = errors.New("no access to the webhooks")
	// ErrHookNotFound: no webhook has the configured ID, or a URL with the
	// webhook path.
	ErrHookNotFound = errors.New("webhook not found")
	// ErrHookAmbiguous: several webhooks have the webhook path in their
	// URL (several Tarty hosts, say): github.hook_id must name Tarty's.
	ErrHookAmbiguous = errors.New("several webhooks match")
)

// Hook is a webhook of the organisation (Repository "") or of a repository
// ("owner/name").
type Hook struct {
	ID           int64
	Organization string // the organisation, or the repository's owner
	Repository   string
	URL          string // config.url: where GitHub delivers
	Active       bool
	Events       []string
}

// Where names the hook for logs: "organization acme" or "repository acme/app".
func (h Hook) Where() string {
	if h.Repository != "" {
		return "repository " + h.Repository
	}
	return "organization " + h.Organization
}

// subscribes reports whether the hook sends workflow_job events.
func (h Hook) subscribes(event string) bool {
	for _, e := range h.Events {
		if e == event || e == "*" {
			return true
		}
	}
	return false
}

// HookDelivery is one delivery attempt in a hook's recent deliveries. A
// redelivery is a new entry with the original's GUID.
type HookDelivery struct {
	ID          int64
	GUID        string // X-GitHub-Delivery, the same for every attempt
	DeliveredAt time.Time
	Redelivery  bool
	Status      string // "OK", "Invalid HTTP Response: 502", "failed to connect to host", ...
	StatusCode  int    // the receiver's answer; 0 when none
	Event       string
	Action      string
}

// OK reports a delivery the receiver accepted.
func (d HookDelivery) OK() bool {
	if d.Status != "" {
		return strings.EqualFold(d.Status, "OK")
	}
	return d.StatusCode >= 200 && d.StatusCode <= 299
}

// hookScope is where hooks are listed: the organisation, or a repository.
type hookScope struct{ owner, repo string }

func (s hookScope) String() string {
	if s.repo != "" {
		return "repository " + s.owner + "/" + s.repo
	}
	return "organization " + s.owner
}

func (c *Client) hookScopes() []hookScope {
	if c.repo != "" {
		// A repository's events reach its own hooks and the organisation's.
		return []hookScope{{c.org, c.repo}, {c.org, ""}}
	}
	return []hookScope{{c.org, ""}}
}

// scopeOf is where hook h lives: its repository, else the organisation.
func (c *Client) scopeOf(h Hook) hookScope {
	if owner, repo, ok := strings.Cut(h.Repository, "/"); ok {
		return hookScope{owner, repo}
	}
	return hookScope{owner: c.org}
}

// hookPermissionFix names the permission hooks in scope s need.
func hookPermissionFix(s hookScope) string {
	if s.repo != "" {
		return fmt.Sprintf(`grant the repository permission "Webhooks: read and write" on %s/%s (fine-grained token or App) or the classic scope admin:repo_hook`, s.owner, s.repo)
	}
	return fmt.Sprintf(`grant the organization permission "Webhooks: read and write" on %s (fine-grained token or App: "Organization webhooks") or the classic scope admin:org_hook`, s.owner)
}

// hookAccess marks a 401, 403 or 404 answer about hooks as ErrHookAccess
// with the permission to grant; other errors pass unchanged.
func hookAccess(err error, s hookScope) error {
	switch statusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrHookAccess, withSetupFix(err, hookPermissionFix(s)))
	}
	return err
}

// FindHook finds Tarty's webhook: the one with ID id (github.hook_id) when
// id is not 0, else the one whose URL's path is path (server.webhook_path),
// among the organisation's hooks, and first the repository's with
// github.repository. When several match, the active ones sending
// workflow_job are preferred; still several is ErrHookAmbiguous. A scope
// whose hooks cannot be read is skipped; if nothing matched elsewhere, the
// error is ErrHookAccess.
func (c *Client) FindHook(ctx context.Context, id int64, path string) (Hook, error) {
	var denied error
	want := normalPath(path)
	for _, s := range c.hookScopes() {
		hooks, err := c.listHooks(ctx, s)
		if errors.Is(err, ErrHookAccess) {
			if denied == nil {
				denied = err
			}
			continue
		}
		if err != nil {
			return Hook{}, err
		}
		var matches []Hook
		for _, h := range hooks {
			if (id != 0 && h.ID == id) || (id == 0 && hookPath(h.URL) == want) {
				matches = append(matches, h)
			}
		}
		if len(matches) > 1 {
			var live []Hook
			for _, h := range matches {
				if h.Active && h.subscribes("workflow_job") {
					live = append(live, h)
				}
			}
			if len(live) > 0 {
				matches = live
			}
		}
		switch len(matches) {
		case 0:
			continue
		case 1:
			return matches[0], nil
		}
		ids := make([]string, len(matches))
		for i, h := range matches {
			ids[i] = fmt.Sprintf("%d (%s)", h.ID, redactURL(h.URL))
		}
		return Hook{}, fmt.Errorf("%w: the webhooks %s of %s all deliver to path %s: set github.hook_id to Tarty's",
			ErrHookAmbiguous, strings.Join(ids, ", "), s, want)
	}
	if denied != nil {
		return Hook{}, denied
	}
	where := c.hookScopes()[0].String()
	if c.repo != "" {
		where += " or organization " + c.org
	}
	if id != 0 {
		return Hook{}, fmt.Errorf("%w: no webhook with ID %d (github.hook_id) in %s", ErrHookNotFound, id, where)
	}
	return Hook{}, fmt.Errorf("%w: no webhook of %s delivers to path %s (server.webhook_path): set github.hook_id, or check the hook's payload URL",
		ErrHookNotFound, where, want)
}

// listHooks reads every hook of scope s.
func (c *Client) listHooks(ctx context.Context, s hookScope) ([]Hook, error) {
	op := "list webhooks of " + s.String()
	if err := c.blocked(op); err != nil {
		return nil, err
	}
	opts := &github.ListOptions{PerPage: perPage}
	var out []Hook
	for {
		var (
			page []*github.Hook
			resp *github.Response
			err  error
		)
		if s.repo != "" {
			page, resp, err = c.gh.Repositories.ListHooks(ctx, s.owner, s.repo, opts)
		} else {
			page, resp, err = c.gh.Organizations.ListHooks(ctx, s.owner, opts)
		}
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, hookAccess(err, s)
		}
		for _, h := range page {
			hk := Hook{ID: h.GetID(), Organization: s.owner, Active: h.GetActive(), Events: h.Events}
			if s.repo != "" {
				hk.Repository = s.owner + "/" + s.repo
			}
			if h.Config != nil {
				hk.URL = h.Config.GetURL()
			}
			out = append(out, hk)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// normalPath is a URL path without its trailing slashes ("/" at least).
func normalPath(p string) string {
	p = strings.TrimRight(strings.TrimSpace(p), "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// hookPath is the path of a hook's payload URL, normalised.
func hookPath(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return ""
	}
	return normalPath(u.Path)
}

// redactURL drops credentials and the query from a payload URL before it
// appears in a message.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// HookDeliveries lists the hook's recent deliveries, newest first, following
// GitHub's cursor paging, and stops before the first one whose ID is at most
// afterID (the newest one already processed: IDs grow with time) or that was
// delivered before since. With max > 0 it stops after max deliveries and
// complete is false: older ones were left unread.
func (c *Client) HookDeliveries(ctx context.Context, h Hook, afterID int64, since time.Time, max int) (ds []HookDelivery, complete bool, err error) {
	s := c.scopeOf(h)
	op := fmt.Sprintf("list deliveries of webhook %d of %s", h.ID, s)
	if err := c.blocked(op); err != nil {
		return nil, false, err
	}
	opts := &github.ListCursorOptions{PerPage: perPage}
	for {
		var (
			page []*github.HookDelivery
			resp *github.Response
			err  error
		)
		if s.repo != "" {
			page, resp, err = c.gh.Repositories.ListHookDeliveries(ctx, s.owner, s.repo, h.ID, opts)
		} else {
			page, resp, err = c.gh.Organizations.ListHookDeliveries(ctx, s.owner, h.ID, opts)
		}
		if err := c.check(op, resp, err, kindOther); err != nil {
			return nil, false, hookAccess(err, s)
		}
		for _, d := range page {
			hd := HookDelivery{
				ID: d.GetID(), GUID: d.GetGUID(), DeliveredAt: d.GetDeliveredAt().Time, Redelivery: d.GetRedelivery(),
				Status: d.GetStatus(), StatusCode: d.GetStatusCode(), Event: d.GetEvent(), Action: d.GetAction(),
			}
			if hd.ID <= afterID || (!since.IsZero() && hd.DeliveredAt.Before(since)) {
				return ds, true, nil
			}
			ds = append(ds, hd)
			if max > 0 && len(ds) >= max {
				return ds, false, nil
			}
		}
		if resp.Cursor == "" || len(page) == 0 {
			return ds, true, nil
		}
		opts.Cursor = resp.Cursor
	}
}

// RedeliverHookDelivery asks GitHub to send delivery deliveryID of hook h
// again (POST .../deliveries/{id}/attempts; GitHub answers 202 and the
// attempt reaches the receiver with the original GUID and body, signed
// alike). Like every write it waits its turn, at least a second after the
// previous one (secondary rate limits). A refusal for want of permission
// (403, or 404 for a delivery just listed) matches ErrHookAccess.
func (c *Client) RedeliverHookDelivery(ctx context.Context, h Hook, deliveryID int64) error {
	s := c.scopeOf(h)
	op := fmt.Sprintf("redeliver delivery %d of webhook %d", deliveryID, h.ID)
	var (
		resp *github.Response
		err  error
	)
	if gerr := c.write(ctx, op, func() {
		if s.repo != "" {
			_, resp, err = c.gh.Repositories.RedeliverHookDelivery(ctx, s.owner, s.repo, h.ID, deliveryID)
		} else {
			_, resp, err = c.gh.Organizations.RedeliverHookDelivery(ctx, s.owner, h.ID, deliveryID)
		}
	}); gerr != nil {
		return gerr
	}
	var accepted *github.AcceptedError
	if errors.As(err, &accepted) { // 202: the attempt is queued
		c.observe(resp)
		return nil
	}
	if err := c.check(op, resp, err, kindOther); err != nil {
		return hookAccess(err, s)
	}
	return nil
}

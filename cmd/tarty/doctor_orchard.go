package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tartyci/tarty/orchard"
)

const fixOrchardAccount = "create the account with `orchard create service-account tarty --roles compute:read --roles compute:write` and set orchard.service_account and orchard.token"

// checkOrchardController: the controller answers, over the pinned
// certificate, and accepts the account.
func checkOrchardController(ctx context.Context, e *doctorEnv) checkResult {
	if e.fleetErr != nil {
		return checkFail("check orchard.url, orchard.ca_file and the token", "%s", oneLineErr(e.fleetErr))
	}
	c := e.fleet.Client()
	info, err := c.Check(ctx)
	switch {
	case errors.Is(err, orchard.ErrUnauthorized):
		return checkFail(fixOrchardAccount, "%s refuses service account %q: %s", c.URL(), c.ServiceAccount(), oneLineErr(err))
	case errors.Is(err, orchard.ErrMissingRole):
		return checkFail("orchard create service-account "+c.ServiceAccount()+" --roles compute:read --roles compute:write (or update it)",
			"service account %q lacks compute:read: %s", c.ServiceAccount(), oneLineErr(err))
	case err != nil:
		return checkFailErr(err, "check that the controller runs and that orchard.url reaches it", "%s", c.URL())
	}
	return checkPass("%s answers (Orchard %s) and lets %q read VMs", c.URL(), info.Version, c.ServiceAccount())
}

// checkOrchardRoles: the account may create VMs (compute:write), probed
// without creating one.
func checkOrchardRoles(ctx context.Context, e *doctorEnv) checkResult {
	c := e.fleet.Client()
	ok, err := c.CanCreateVMs(ctx)
	switch {
	case err != nil:
		return checkFailErr(err, "check the controller's log", "probing compute:write")
	case !ok:
		return checkFail("orchard create service-account "+c.ServiceAccount()+" --roles compute:read --roles compute:write (or update it)",
			"service account %q lacks compute:write: it cannot create runner VMs", c.ServiceAccount())
	}
	return checkPass("service account %q has compute:read and compute:write", c.ServiceAccount())
}

// checkOrchardWorkers: which workers are online, whether they carry
// orchard.worker_labels, and how many runner slots they offer now.
func checkOrchardWorkers(ctx context.Context, e *doctorEnv) checkResult {
	workers, err := e.fleet.Workers(ctx)
	if err != nil {
		return checkFailErr(err, "check the controller's log", "listing workers")
	}
	var usable, others []string
	free := 0
	for _, w := range workers {
		labels := make([]string, 0, len(w.Labels))
		for k, v := range w.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		desc := fmt.Sprintf("%s [%s]", w.Name, strings.Join(labels, " "))
		switch {
		case !w.Online:
			others = append(others, desc+" offline")
		case w.Paused:
			others = append(others, desc+" paused")
		case !w.Matches:
			others = append(others, desc+" without orchard.worker_labels")
		default:
			usable = append(usable, fmt.Sprintf("%s (%d of %d slots free)", desc, w.Free, w.Slots))
			free += w.Free
		}
	}
	if len(usable) == 0 {
		return checkFail("start `orchard worker run` on the Macs, or fix orchard.worker_labels",
			"no online worker carries orchard.worker_labels %v (workers: %s)", e.cfg.Orchard.WorkerLabels, listOrNone(others))
	}
	msg := fmt.Sprintf("%d worker(s) serve runners, %d slots free now: %s", len(usable), free, strings.Join(usable, "; "))
	if len(others) > 0 {
		return checkWarn("bring them back with `orchard worker run`, or resume them, if they should serve runners",
			"%s; not usable: %s", msg, strings.Join(others, "; "))
	}
	return checkPass("%s", msg)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

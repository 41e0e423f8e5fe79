package orchard

import (
	"strings"
	"time"
)

// ResourceTartVMs is the worker resource that carries Apple's two-VM limit:
// every darwin VM asks for one, every worker offers two by default.
const ResourceTartVMs = "org.cirruslabs.tart-vms"

// VM statuses (reference/orchard.md section 2). Older controllers also report
// stopping and stopped.
const (
	StatusPending  = "pending"
	StatusRunning  = "running"
	StatusFailed   = "failed"
	StatusStopping = "stopping"
	StatusStopped  = "stopped"
)

// Restart policies.
const (
	RestartNever     = "Never"
	RestartOnFailure = "OnFailure"
)

// VM is the controller's VM resource, with the fields Tarty sends or reads.
// Outputs (status, worker, uid, times) are omitted when empty so that a
// create never sends them: the controller keeps a client-sent worker or
// status message.
type VM struct {
	Name          string            `json:"name"`
	Image         string            `json:"image"`
	CPU           uint64            `json:"cpu,omitempty"`
	Memory        uint64            `json:"memory,omitempty"` // MiB
	Headless      bool              `json:"headless"`
	NetSoftnet    bool              `json:"netSoftnet,omitempty"`
	RestartPolicy string            `json:"restart_policy,omitempty"`
	Resources     map[string]uint64 `json:"resources,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	OS            string            `json:"os,omitempty"`
	Arch          string            `json:"arch,omitempty"`
	Runtime       string            `json:"runtime,omitempty"`

	Status        string     `json:"status,omitempty"`
	StatusMessage string     `json:"status_message,omitempty"`
	Worker        string     `json:"worker,omitempty"`
	UID           string     `json:"uid,omitempty"`
	RestartCount  uint64     `json:"restart_count,omitempty"`
	CreatedAt     *time.Time `json:"createdAt,omitempty"`
	ScheduledAt   *time.Time `json:"scheduled_at,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
}

// Terminal reports whether the VM will never run again (without OnFailure).
func (v VM) Terminal() bool { return v.Status == StatusFailed || v.Status == StatusStopped }

// Placed reports whether the controller's scheduler gave the VM a worker.
func (v VM) Placed() bool { return v.Worker != "" }

// GuestExited reports whether a failed VM ended because its guest powered
// off ("VM failed: VM exited unexpectedly"), which for a runner is the
// normal end of its job, or because it stopped (older controllers).
func (v VM) GuestExited() bool {
	return v.Status == StatusStopped ||
		(v.Status == StatusFailed && strings.Contains(v.StatusMessage, "VM exited unexpectedly"))
}

// WorkerLost reports whether a failed VM failed with its worker: offline,
// restarted ("lost track"), or deleted.
func (v VM) WorkerLost() bool {
	m := strings.ToLower(v.StatusMessage)
	return v.Status == StatusFailed && (strings.Contains(m, "lost track") || strings.Contains(m, "lost connection") ||
		strings.Contains(m, "doesn't exist anymore") || strings.Contains(m, "does not exist anymore"))
}

// Worker is the controller's worker resource.
type Worker struct {
	Name             string            `json:"name"`
	LastSeen         time.Time         `json:"last_seen"`
	MachineID        string            `json:"machine_id,omitempty"`
	SchedulingPaused bool              `json:"scheduling_paused"`
	Resources        map[string]uint64 `json:"resources,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	DefaultCPU       uint64            `json:"defaultCPU,omitempty"`
	DefaultMemory    uint64            `json:"defaultMemory,omitempty"`
	Arch             string            `json:"arch,omitempty"`
	Runtime          string            `json:"runtime,omitempty"`
	CreatedAt        *time.Time        `json:"createdAt,omitempty"`
}

// OfflineAfter is the controller's default --worker-offline-timeout: a worker
// whose last heartbeat is older is offline (workers heartbeat every 15 s).
const OfflineAfter = 3 * time.Minute

// HasLabels reports whether the worker carries every label in want.
func (w Worker) HasLabels(want map[string]string) bool {
	for k, v := range want {
		if got, ok := w.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ControllerInfo is GET /v1/controller/info.
type ControllerInfo struct {
	Version      string   `json:"version"`
	Commit       string   `json:"commit"`
	Capabilities []string `json:"capabilities"`
}

// WatchEvent is one line of a per-VM watch.
type WatchEvent struct {
	Type   string `json:"type"` // ADDED, MODIFIED, DELETED
	Object VM     `json:"object"`
}

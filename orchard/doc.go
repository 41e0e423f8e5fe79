// Package orchard runs Tarty's runner VMs on a fleet of Macs through an
// Orchard controller (Cirrus Labs' orchestrator for tart), speaking its REST
// API directly (reference/orchard.md in the design notes).
//
// Client is the API: HTTP Basic with a service account and its token (or a
// bootstrap token that carries both and the controller's certificate), the
// controller's certificate pinned as the only root and checked under its
// own name (orchard-controller by default) while the controller is dialled
// by address, Tarty's own User-Agent (a PUT whose agent starts "Orchard/0" is
// taken for a worker's), bounded requests, and typed errors: ErrUnauthorized
// (401, empty body), ErrMissingRole (401 naming the roles: Orchard never
// answers 403), ErrForbidden (403, from a proxy), ErrNotFound (404),
// ErrConflict (409) and ErrUnavailable (503, the VM's worker disconnected).
// WatchVM streams one VM's changes; PortForward opens a TCP stream into a
// guest as a net.Conn over the controller's WebSocket.
//
// Backend implements the scheduler's Backend port (and its optional Fleet
// port, for /status). VMs carry orchard.worker_labels as labels and ask for
// one org.cirruslabs.tart-vms, the resource behind Apple's two VMs per Mac;
// Create refuses (a VM-limit error) rather than make a VM no worker can take
// now, since the controller has no pending timeout. Boot follows the VM by
// watch until it runs, and its channel reports the end: a guest that powered
// off ("VM exited unexpectedly") is a clean end, a lost worker an error.
// Address and Dial reach the guest's SSH through the port-forward, so the
// runner's JIT config goes over SSH and never touches the controller, whose
// VM records every worker can read.
//
// fakeorchard is the controller's test double; production code never
// imports it.
package orchard

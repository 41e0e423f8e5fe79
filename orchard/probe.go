package orchard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// CanCreateVMs reports whether the service account holds compute:write,
// without creating anything: it posts a body that is not a VM. The
// controller checks roles before it reads the body, so a missing role answers
// 401 and a present one 400 ("invalid JSON").
func (c *Client) CanCreateVMs(ctx context.Context) (bool, error) {
	_, err := c.send(ctx, http.MethodPost, "/v1/vms", nil, json.RawMessage(`[]`))
	var ae *APIError
	switch {
	case err == nil:
		return false, errors.New("orchard: the controller accepted a body that is not a VM")
	case errors.Is(err, ErrMissingRole):
		return false, nil
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		return true, nil
	}
	return false, err
}

// Check reads the controller's info and lists VMs: the account is accepted
// and holds compute:read (any account may read the info alone).
func (c *Client) Check(ctx context.Context) (ControllerInfo, error) {
	info, err := c.Info(ctx)
	if err == nil {
		_, err = c.ListVMs(ctx)
	}
	return info, err
}

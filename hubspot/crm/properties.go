package crm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// GroupName is the property group that holds every property hs2cc writes.
const GroupName = "hs2cc"

// The contact properties hs2cc writes back.
const (
	PropStatus   = "hs2cc_cc_status"
	PropLists    = "hs2cc_cc_lists"
	PropSyncedAt = "hs2cc_cc_synced_at"
	PropReason   = "hs2cc_cc_reason"
)

// The values of PropStatus.
const (
	StatusImported     = "imported"
	StatusRejected     = "rejected"
	StatusUnsubscribed = "unsubscribed"
	StatusRemoved      = "removed"
	StatusPending      = "pending"
)

// Option is one choice of an enumeration property.
type Option struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Property is a contact property definition as the properties API takes it.
type Property struct {
	Name      string   `json:"name"`
	Label     string   `json:"label"`
	Type      string   `json:"type"`
	FieldType string   `json:"fieldType"`
	GroupName string   `json:"groupName"`
	Options   []Option `json:"options,omitempty"`
}

// Properties returns the definitions of the properties hs2cc writes; this
// is the one place they are written down.
func Properties() []Property {
	var opts []Option
	for _, v := range []string{StatusImported, StatusRejected, StatusUnsubscribed, StatusRemoved, StatusPending} {
		opts = append(opts, Option{Label: v, Value: v})
	}
	return []Property{
		{Name: PropStatus, Label: "Constant Contact status", Type: "enumeration", FieldType: "select", GroupName: GroupName, Options: opts},
		{Name: PropLists, Label: "Constant Contact lists", Type: "string", FieldType: "text", GroupName: GroupName},
		{Name: PropSyncedAt, Label: "Constant Contact synced at", Type: "datetime", FieldType: "date", GroupName: GroupName},
		{Name: PropReason, Label: "Constant Contact reason", Type: "string", FieldType: "text", GroupName: GroupName},
	}
}

// EnsureProperties creates the hs2cc property group and those of the
// properties that are missing. It reads before it writes, so a second call
// only reads; a 409 from a create (another process was first) counts as
// success. An existing property is left as it is.
func (c *Client) EnsureProperties(ctx context.Context) error {
	if err := c.ensureGroup(ctx); err != nil {
		return err
	}
	for _, p := range Properties() {
		exists, err := c.exists(ctx, "crm/v3/properties/contacts/"+url.PathEscape(p.Name))
		if err != nil {
			return fmt.Errorf("crm: read property %s: %w", p.Name, err)
		}
		if exists {
			continue
		}
		if err := c.create(ctx, "crm/v3/properties/contacts", p); err != nil {
			return fmt.Errorf("crm: create property %s: %w", p.Name, err)
		}
	}
	return nil
}

func (c *Client) ensureGroup(ctx context.Context) error {
	req, err := c.newRequest(ctx, http.MethodGet, "crm/v3/properties/contacts/groups", nil)
	if err != nil {
		return err
	}
	var out struct {
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	if _, err := c.do(req, &out); err != nil {
		return fmt.Errorf("crm: list property groups: %w", err)
	}
	for _, g := range out.Results {
		if g.Name == GroupName {
			return nil
		}
	}
	group := map[string]string{"name": GroupName, "label": GroupName}
	if err := c.create(ctx, "crm/v3/properties/contacts/groups", group); err != nil {
		return fmt.Errorf("crm: create property group: %w", err)
	}
	return nil
}

// exists reads ref and reports false on a 404.
func (c *Client) exists(ctx context.Context, ref string) (bool, error) {
	req, err := c.newRequest(ctx, http.MethodGet, ref, nil)
	if err != nil {
		return false, err
	}
	_, err = c.do(req, nil)
	var e *APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// create posts body to ref; a 409 means it already exists, which is fine.
func (c *Client) create(ctx context.Context, ref string, body any) error {
	req, err := c.newRequest(ctx, http.MethodPost, ref, body)
	if err != nil {
		return err
	}
	_, err = c.do(req, nil)
	var e *APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusConflict {
		return nil
	}
	return err
}

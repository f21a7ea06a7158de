package ccclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// CustomField is a CC contact custom field. Name is what an import's
// "cf:<name>" key must say (CC derives it from the label, spaces becoming
// underscores); Label is what people see.
type CustomField struct {
	ID    string `json:"custom_field_id"`
	Name  string `json:"name"`
	Label string `json:"label"`
	Type  string `json:"type"`
}

// CustomFields returns every custom field of the account, following CC's
// next links (100 a page, CC's largest).
func (c *Client) CustomFields(ctx context.Context) ([]CustomField, error) {
	var all []CustomField
	err := c.pages(ctx, "contact_custom_fields?"+url.Values{"limit": {"100"}}.Encode(), "/contact_custom_fields",
		func(raw []byte) (string, error) {
			var page struct {
				CustomFields []CustomField `json:"custom_fields"`
				Links        pageLinks     `json:"_links"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return "", err
			}
			all = append(all, page.CustomFields...)
			return page.Links.Next.Href, nil
		})
	if err != nil {
		return nil, fmt.Errorf("ccclient: list custom fields: %w", err)
	}
	return all, nil
}

// CreateCustomField creates a text custom field with the label given; its
// name is the label with spaces replaced by underscores, so a label made of
// letters, digits and underscores is its own name. A label already taken
// gives an *APIError whose Conflict reports true.
func (c *Client) CreateCustomField(ctx context.Context, label string) (*CustomField, error) {
	const op = "ccclient: create custom field"
	if blank(label) {
		return nil, fmt.Errorf("%s: empty label", op)
	}
	body := struct {
		Label string `json:"label"`
		Type  string `json:"type"`
	}{Label: label, Type: "string"}
	req, err := c.newRequest(ctx, "POST", "contact_custom_fields", body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var f CustomField
	if err := c.do(req, "/contact_custom_fields", &f); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, label, err)
	}
	return &f, nil
}

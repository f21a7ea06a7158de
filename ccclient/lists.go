package ccclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ContactList is a CC contact list (ContactList, ContactListPutPost).
// MembershipCount is filled only when CC sends membership_count.
type ContactList struct {
	ListID          string    `json:"list_id"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	Favorite        bool      `json:"favorite"`
	CreatedAt       time.Time `json:"created_at,omitzero"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
	MembershipCount int       `json:"membership_count,omitempty"`
}

// UnmarshalJSON decodes a list with tolerant timestamps and counts.
func (l *ContactList) UnmarshalJSON(b []byte) error {
	var w struct {
		ListID          flexString `json:"list_id"`
		Name            string     `json:"name"`
		Description     string     `json:"description"`
		Favorite        bool       `json:"favorite"`
		CreatedAt       isoTime    `json:"created_at"`
		UpdatedAt       isoTime    `json:"updated_at"`
		MembershipCount flexInt    `json:"membership_count"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*l = ContactList{
		ListID:          string(w.ListID),
		Name:            w.Name,
		Description:     w.Description,
		Favorite:        w.Favorite,
		CreatedAt:       time.Time(w.CreatedAt),
		UpdatedAt:       time.Time(w.UpdatedAt),
		MembershipCount: int(w.MembershipCount),
	}
	return nil
}

type contactListPage struct {
	Lists []ContactList `json:"lists"`
	Links pageLinks     `json:"_links"`
}

// ContactLists returns every contact list of the account, following CC's
// next links (1,000 lists per page; an account holds at most 1,000).
func (c *Client) ContactLists(ctx context.Context) ([]ContactList, error) {
	lists, err := c.contactLists(ctx, url.Values{"limit": {"1000"}})
	if err != nil {
		return nil, fmt.Errorf("ccclient: list contact lists: %w", err)
	}
	return lists, nil
}

// ContactListByName returns the list with exactly this name, using CC's
// name filter. If CC answers with lists whose names differ only in case
// (whether CC's names are case-sensitive is unconfirmed), the first of those
// is returned, so that a get-or-create after a 409 finds the list that
// caused it. With no match the error wraps ErrNotFound.
func (c *Client) ContactListByName(ctx context.Context, name string) (*ContactList, error) {
	const op = "ccclient: find contact list"
	if name == "" {
		return nil, fmt.Errorf("%s: empty name", op)
	}
	lists, err := c.contactLists(ctx, url.Values{"name": {name}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var fold *ContactList
	for i := range lists {
		if lists[i].Name == name {
			return &lists[i], nil
		}
		if fold == nil && strings.EqualFold(lists[i].Name, name) {
			fold = &lists[i]
		}
	}
	if fold != nil {
		return fold, nil
	}
	return nil, fmt.Errorf("%s %q: %w", op, name, ErrNotFound)
}

func (c *Client) contactLists(ctx context.Context, q url.Values) ([]ContactList, error) {
	var all []ContactList
	err := c.pages(ctx, "contact_lists?"+q.Encode(), "/contact_lists", func(raw []byte) (string, error) {
		var page contactListPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return "", err
		}
		all = append(all, page.Lists...)
		return page.Links.Next.Href, nil
	})
	return all, err
}

// CreateContactList creates a list. A name that already exists gives an
// *APIError whose Conflict reports true.
func (c *Client) CreateContactList(ctx context.Context, name, description string) (*ContactList, error) {
	const op = "ccclient: create contact list"
	if blank(name) {
		return nil, fmt.Errorf("%s: empty name", op)
	}
	body := struct {
		Name        string `json:"name"`
		Favorite    bool   `json:"favorite"`
		Description string `json:"description,omitempty"`
	}{Name: name, Description: description}
	req, err := c.newRequest(ctx, "POST", "contact_lists", body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var l ContactList
	if err := c.do(req, "/contact_lists", &l); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if l.ListID == "" {
		return nil, fmt.Errorf("%s: response has no list_id", op)
	}
	return &l, nil
}

// DeleteContactList deletes a list and its memberships; the contacts stay.
// CC answers 202 and finishes the deletion later, so the list may still
// show in ContactLists for a while after this returns. An unknown list_id
// gives an error that matches ErrNotFound.
func (c *Client) DeleteContactList(ctx context.Context, listID string) error {
	const op = "ccclient: delete contact list"
	if blank(listID) {
		return fmt.Errorf("%s: empty list id", op)
	}
	req, err := c.newRequest(ctx, "DELETE", "contact_lists/"+url.PathEscape(listID), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	// The 202 body is the deletion's activity; nothing the bridge does
	// waits for it, so it is not decoded.
	if err := c.do(req, "/contact_lists/{list_id}", nil); err != nil {
		return fmt.Errorf("%s %s: %w", op, listID, err)
	}
	return nil
}

package ccclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// maxContactsListFilter is CC's cap on list ids in one GET /contacts.
const maxContactsListFilter = 25

// Contact is the part of a CC ContactResource the bridge verifies imports
// with.
type Contact struct {
	ContactID string `json:"contact_id"`
	// Email is email_address.address.
	Email     string `json:"email"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	// ListMemberships holds the ids of the lists the contact is on.
	ListMemberships []string `json:"list_memberships,omitempty"`
	// PermissionToSend is email_address.permission_to_send: explicit,
	// implicit, not_set, pending_confirmation, temp_hold or unsubscribed.
	// An unsubscribed contact explains a cannot_add_to_list_count.
	PermissionToSend string `json:"permission_to_send,omitempty"`
}

// UnmarshalJSON decodes CC's ContactResource shape, flattening
// email_address.
func (c *Contact) UnmarshalJSON(b []byte) error {
	var w struct {
		ContactID    flexString `json:"contact_id"`
		EmailAddress struct {
			Address          string `json:"address"`
			PermissionToSend string `json:"permission_to_send"`
		} `json:"email_address"`
		FirstName       string   `json:"first_name"`
		LastName        string   `json:"last_name"`
		ListMemberships []string `json:"list_memberships"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Contact{
		ContactID:        string(w.ContactID),
		Email:            w.EmailAddress.Address,
		FirstName:        w.FirstName,
		LastName:         w.LastName,
		ListMemberships:  w.ListMemberships,
		PermissionToSend: w.EmailAddress.PermissionToSend,
	}
	return nil
}

// Contacts returns the contacts on any of listIDs, with their list
// memberships, following CC's paging. CC filters on at most 25 lists per
// request, so longer sets are queried 25 at a time and the results merged
// (each contact once, in first-seen order). No list ids means no contacts
// and no request; this never lists the whole account.
func (c *Client) Contacts(ctx context.Context, listIDs []string) ([]Contact, error) {
	const op = "ccclient: list contacts"
	var all []Contact
	seen := make(map[string]bool)
	for start := 0; start < len(listIDs); start += maxContactsListFilter {
		chunk := listIDs[start:min(start+maxContactsListFilter, len(listIDs))]
		q := url.Values{
			"lists":   {strings.Join(chunk, ",")},
			"include": {"list_memberships"},
			"limit":   {"500"},
		}
		err := c.pages(ctx, "contacts?"+q.Encode(), "/contacts", func(raw []byte) (string, error) {
			var page struct {
				Contacts []Contact `json:"contacts"`
				Links    pageLinks `json:"_links"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return "", err
			}
			for _, ct := range page.Contacts {
				if ct.ContactID != "" && seen[ct.ContactID] {
					continue
				}
				seen[ct.ContactID] = true
				all = append(all, ct)
			}
			return page.Links.Next.Href, nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return all, nil
}

// errEnoughPages stops paging once the caller's page budget is spent.
var errEnoughPages = fmt.Errorf("ccclient: page budget spent")

// UnsubscribedEmails returns the lower-cased addresses of unsubscribed
// contacts (GET /contacts?status=unsubscribed), reading at most maxPages
// pages of 500. complete is false when more pages were left unread. The
// bridge uses it to learn which contacts of an import CC could not add to
// lists, since an activity only counts them.
func (c *Client) UnsubscribedEmails(ctx context.Context, maxPages int) (emails map[string]bool, complete bool, err error) {
	q := url.Values{"status": {"unsubscribed"}, "limit": {"500"}}
	emails, complete, err = c.emails(ctx, q, maxPages, func(ct Contact) bool {
		return ct.PermissionToSend == "" || ct.PermissionToSend == "unsubscribed"
	}, nil)
	if err != nil {
		return nil, false, fmt.Errorf("ccclient: unsubscribed contacts: %w", err)
	}
	return emails, complete, nil
}

// UnsubscribedSince returns the lower-cased addresses of the contacts CC
// has unsubscribed and changed after since (GET /contacts?status=
// unsubscribed&updated_after=…), reading at most maxPages pages of 500;
// pages is how many it read (a call each) and complete is false when more
// were left unread. The bridge writes these back to HubSpot.
func (c *Client) UnsubscribedSince(ctx context.Context, since time.Time, maxPages int) (emails map[string]bool, pages int, complete bool, err error) {
	q := url.Values{"status": {"unsubscribed"}, "updated_after": {since.UTC().Format(time.RFC3339)}, "limit": {"500"}}
	counted := 0
	emails, complete, err = c.emails(ctx, q, maxPages, func(ct Contact) bool {
		return ct.PermissionToSend == "" || ct.PermissionToSend == "unsubscribed"
	}, &counted)
	if err != nil {
		return nil, counted, false, fmt.Errorf("ccclient: contacts unsubscribed since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return emails, counted, complete, nil
}

// UpdatedEmails returns the lower-cased addresses of the contacts on the
// list listID that CC changed after since (GET /contacts?lists=…
// &updated_after=…), reading at most maxPages pages of 500; complete is
// false when more pages were left unread. After an import whose activity
// counted refused rows without naming them, the rows whose contacts CC did
// not touch are the refused ones.
func (c *Client) UpdatedEmails(ctx context.Context, listID string, since time.Time, maxPages int) (emails map[string]bool, complete bool, err error) {
	q := url.Values{"lists": {listID}, "updated_after": {since.UTC().Format(time.RFC3339)}, "limit": {"500"}}
	emails, complete, err = c.emails(ctx, q, maxPages, func(Contact) bool { return true }, nil)
	if err != nil {
		return nil, false, fmt.Errorf("ccclient: contacts updated since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return emails, complete, nil
}

// emails reads GET /contacts with q, page by page up to maxPages, into the
// lower-cased addresses of the contacts keep accepts.
func (c *Client) emails(ctx context.Context, q url.Values, maxPages int, keep func(Contact) bool, read *int) (map[string]bool, bool, error) {
	emails := map[string]bool{}
	pages := 0
	defer func() {
		// The pages read are reported even when a later one failed: each
		// was a call spent.
		if read != nil {
			*read = pages
		}
	}()
	err := c.pages(ctx, "contacts?"+q.Encode(), "/contacts", func(raw []byte) (string, error) {
		var page struct {
			Contacts []Contact `json:"contacts"`
			Links    pageLinks `json:"_links"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return "", err
		}
		for _, ct := range page.Contacts {
			if keep(ct) {
				emails[strings.ToLower(ct.Email)] = true
			}
		}
		pages++
		if page.Links.Next.Href != "" && pages >= maxPages {
			return "", errEnoughPages
		}
		return page.Links.Next.Href, nil
	})
	if errors.Is(err, errEnoughPages) {
		return emails, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return emails, true, nil
}

// ContactByEmail returns the contact CC holds with this email, with its
// list memberships (list ids) and email status (PermissionToSend), or nil
// when CC has none (GET /contacts?email=…&include=list_memberships). It is
// one call: CC matches the whole address, so there is never a second page.
// Deleted contacts are not returned, as CC's default status filter leaves
// them out.
func (c *Client) ContactByEmail(ctx context.Context, email string) (*Contact, error) {
	q := url.Values{"email": {strings.TrimSpace(email)}, "include": {"list_memberships"}}
	req, err := c.newRequest(ctx, "GET", "contacts?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("ccclient: contact by email: %w", err)
	}
	var page struct {
		Contacts []Contact `json:"contacts"`
	}
	if err := c.do(req, "/contacts", &page); err != nil {
		return nil, fmt.Errorf("ccclient: contact by email: %w", err)
	}
	for i := range page.Contacts {
		if strings.EqualFold(page.Contacts[i].Email, strings.TrimSpace(email)) {
			return &page.Contacts[i], nil
		}
	}
	return nil, nil
}

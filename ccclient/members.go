package ccclient

import (
	"context"
	"fmt"
	"net/url"
)

// MembersPageSize is how many contacts one GET /contacts page holds at
// most (CC's limit), so a list of n members takes ceil(n/500) calls to read.
const MembersPageSize = 500

// ContactsQuery picks the contacts ContactsPage reads: the members of one
// list, or the contact with one email address. Either way every status is
// asked for (status=all), so that an unsubscribed contact is seen with its
// permission rather than left out.
type ContactsQuery struct {
	ListID string
	Email  string
}

// ContactPage is one page of GET /contacts.
type ContactPage struct {
	Contacts []Contact
	// Next is CC's href of the next page, "" on the last one; pass it back
	// to ContactsPage to read that page.
	Next string
}

// ContactsPage makes exactly one GET /contacts call: the first page of q
// when next is "", else the page next (an href from the previous page)
// points to. One call per page lets a caller count, announce and show the
// calls a long read spends, which Contacts, paging on its own, cannot.
func (c *Client) ContactsPage(ctx context.Context, q ContactsQuery, next string) (*ContactPage, error) {
	const op = "ccclient: contacts page"
	ref := next
	if ref == "" {
		v := url.Values{"status": {"all"}, "include": {"list_memberships"}, "limit": {fmt.Sprint(MembersPageSize)}}
		switch {
		case q.ListID != "":
			v.Set("lists", q.ListID)
		case q.Email != "":
			v.Set("email", q.Email)
		default:
			// Without a filter this would page through the whole account.
			return nil, fmt.Errorf("%s: a list id or an email is required", op)
		}
		ref = "contacts?" + v.Encode()
	} else {
		var err error
		if ref, err = c.linkURL(next); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	req, err := c.newRequest(ctx, "GET", ref, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var page struct {
		Contacts []Contact `json:"contacts"`
		Links    pageLinks `json:"_links"`
	}
	if err := c.do(req, "/contacts", &page); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &ContactPage{Contacts: page.Contacts, Next: page.Links.Next.Href}, nil
}

// ListMemberCounts returns every contact list of the account with its
// membership_count, usually in one call (1,000 lists a page), so that a
// reader of the lists' members can say beforehand how many pages, and so
// calls, the read will take.
func (c *Client) ListMemberCounts(ctx context.Context) ([]ContactList, error) {
	lists, err := c.contactLists(ctx, url.Values{"limit": {"1000"}, "include_membership_count": {"all"}})
	if err != nil {
		return nil, fmt.Errorf("ccclient: count list members: %w", err)
	}
	return lists, nil
}

package crm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
)

// MaxBatch is the most inputs HubSpot takes in one batch call.
const MaxBatch = 100

// ContactUpdate sets Properties on the contact with HubSpot id ID.
type ContactUpdate struct {
	ID         string
	Properties map[string]string
}

// BatchResult says which contacts a batch updated and which it could not
// because HubSpot no longer has them (deleted or merged away).
type BatchResult struct {
	Updated []string
	Missing []string
}

// CategoryNotFound is HubSpot's error category for ids it does not have.
const CategoryNotFound = "OBJECT_NOT_FOUND"

type batchInput struct {
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

type batchResponse struct {
	Status  string `json:"status"`
	Results []struct {
		ID string `json:"id"`
	} `json:"results"`
	Errors []ErrorDetail `json:"errors"`
}

// BatchUpdateContacts sends at most MaxBatch updates as one batch call.
// HubSpot's answer to ids it does not have is unconfirmed, so both readings
// are handled: a 207 that updates the others and names the missing ids in
// its errors, or a refusal of the whole batch (400 or 404, category
// OBJECT_NOT_FOUND) naming them in context.ids or the message, after which
// the named ids are dropped and the rest sent again. Missing ids are
// reported in the result, not as an error. A 207 entry of another category
// is in neither list, so an id sent but in neither was not updated.
func (c *Client) BatchUpdateContacts(ctx context.Context, updates []ContactUpdate) (BatchResult, error) {
	if len(updates) > MaxBatch {
		return BatchResult{}, fmt.Errorf("crm: batch of %d contacts: at most %d per call", len(updates), MaxBatch)
	}
	var res BatchResult
	for len(updates) > 0 {
		updated, missing, err := c.batchUpdate(ctx, updates)
		res.Updated = append(res.Updated, updated...)
		if err == nil {
			res.Missing = append(res.Missing, missing...)
			return res, nil
		}
		dropped, rest := dropMissing(updates, err)
		if len(dropped) == 0 {
			return res, err
		}
		res.Missing = append(res.Missing, dropped...)
		updates = rest
	}
	return res, nil
}

// batchUpdate makes one call and returns the updated ids and, from a 207,
// the missing ones.
func (c *Client) batchUpdate(ctx context.Context, updates []ContactUpdate) (updated, missing []string, err error) {
	in := make([]batchInput, len(updates))
	for i, u := range updates {
		in[i] = batchInput{ID: u.ID, Properties: u.Properties}
	}
	req, err := c.newRequest(ctx, http.MethodPost, "crm/v3/objects/contacts/batch/update", map[string]any{"inputs": in})
	if err != nil {
		return nil, nil, err
	}
	var out batchResponse
	status, err := c.do(req, &out)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range out.Results {
		updated = append(updated, r.ID)
	}
	if status == http.StatusMultiStatus {
		for _, e := range out.Errors {
			if e.Category == CategoryNotFound {
				missing = append(missing, e.Context["ids"]...)
			}
		}
	}
	return updated, missing, nil
}

// idToken finds the digit runs in a message that might be contact ids.
var idToken = regexp.MustCompile(`[0-9]+`)

// dropMissing reads a whole-batch refusal for missing contacts and splits
// updates into the ids it names and the rest. Ids come from context.ids,
// or else from the message, where only ids that were sent count, so that a
// number in the prose cannot drop a contact by accident. Anything else
// drops nothing.
func dropMissing(updates []ContactUpdate, err error) (dropped []string, rest []ContactUpdate) {
	var e *APIError
	if !errors.As(err, &e) || (e.StatusCode != http.StatusBadRequest && e.StatusCode != http.StatusNotFound) {
		return nil, nil
	}
	named := map[string]bool{}
	notFound := e.Category == CategoryNotFound
	for _, d := range e.Errors {
		notFound = notFound || d.Category == CategoryNotFound
	}
	if !notFound {
		return nil, nil
	}
	for _, id := range e.IDs {
		named[id] = true
	}
	if len(named) == 0 {
		for _, id := range idToken.FindAllString(e.Message, -1) {
			named[id] = true
		}
		for _, d := range e.Errors {
			for _, id := range idToken.FindAllString(d.Message, -1) {
				named[id] = true
			}
		}
	}
	for _, u := range updates {
		if named[u.ID] {
			dropped = append(dropped, u.ID)
		} else {
			rest = append(rest, u)
		}
	}
	return dropped, rest
}

package ccsandbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errBadCursor is returned for a cursor the sandbox did not issue.
var errBadCursor = errors.New("the cursor is not valid")

// link is CC's HATEOAS link. Every href is relative and starts with /v3, so
// a client must prefix its own base URL rather than follow it blindly.
type link struct {
	Href string `json:"href"`
}

// pagingLinks is CC's PagingLinks; next is absent on the last page.
type pagingLinks struct {
	Next *link `json:"next,omitempty"`
}

// pageQuery returns the query a collection request stands for. CC's cursor
// is the Base64 of the original query plus the position ("limit=1&next=2"),
// so a request with a cursor uses only what the cursor holds.
func pageQuery(r *http.Request) (url.Values, int, error) {
	q := r.URL.Query()
	c := q.Get("cursor")
	if c == "" {
		return q, 0, nil
	}
	raw, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return nil, 0, errBadCursor
	}
	q, err = url.ParseQuery(string(raw))
	if err != nil {
		return nil, 0, errBadCursor
	}
	next, err := strconv.Atoi(q.Get("next"))
	if err != nil || next < 0 {
		return nil, 0, errBadCursor
	}
	return q, next, nil
}

// pagedParams reads a paged request's query and offset. A bad cursor is
// reported through p.err, like any other bad parameter, so that every list
// endpoint checks one error.
func pagedParams(r *http.Request) (queryParams, int) {
	q, offset, err := pageQuery(r)
	return queryParams{q: q, err: err}, offset
}

// nextLink returns the _links value for a page that ends at end of total
// items, or nil on the last page.
func nextLink(path string, q url.Values, end, total int) *pagingLinks {
	if end >= total {
		return nil
	}
	c := url.Values{}
	for k, v := range q {
		if k != "cursor" && k != "next" {
			c[k] = v
		}
	}
	c.Set("next", strconv.Itoa(end))
	cursor := base64.StdEncoding.EncodeToString([]byte(c.Encode()))
	return &pagingLinks{Next: &link{Href: path + "?cursor=" + url.QueryEscape(cursor)}}
}

// queryParams reads collection parameters with a sticky error, so that a
// handler can read them all and check once, answering 400 with the first
// problem as CC does.
type queryParams struct {
	q   url.Values
	err error
}

// limit reads the limit parameter, which CC bounds per endpoint.
func (p *queryParams) limit(def, maxLimit int) int {
	v := p.q.Get("limit")
	if v == "" || p.err != nil {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		p.err = fmt.Errorf("limit must be an integer from 1 to %d", maxLimit)
		return def
	}
	return n
}

// bool reads an optional boolean parameter.
func (p *queryParams) bool(name string) bool {
	v := p.q.Get(name)
	if v == "" || p.err != nil {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.err = fmt.Errorf("%s must be true or false", name)
	}
	return b
}

// enumList reads a comma-separated parameter whose values must each be one
// of allowed; it returns nil when the parameter is absent.
func (p *queryParams) enumList(name string, allowed ...string) []string {
	v := p.q.Get(name)
	if v == "" || p.err != nil {
		return nil
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			p.err = fmt.Errorf("%s does not have a valid value: %q", name, f)
			return nil
		}
		out = append(out, f)
	}
	return out
}

// time reads an optional ISO-8601 timestamp parameter.
func (p *queryParams) time(name string) time.Time {
	v := p.q.Get(name)
	if v == "" || p.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.err = fmt.Errorf("%s must be an ISO-8601 date-time", name)
	}
	return t
}

// window returns the bounds of one page over n items.
func window(offset, limit, n int) (int, int) {
	start := min(offset, n)
	return start, min(start+limit, n)
}

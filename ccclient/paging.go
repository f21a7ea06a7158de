package ccclient

import (
	"context"
	"encoding/json"
	"fmt"
)

// maxPages bounds a paging walk; 10,000 pages of 500 is far past any
// account this bridge serves, so hitting it means a server bug.
const maxPages = 10000

// pageLinks is CC's PagingLinks; Next.Href is empty on the last page.
type pageLinks struct {
	Next Link `json:"next"`
}

// pages GETs ref and then every page its next links lead to. page decodes
// one raw body and returns the page's next href ("" on the last page).
func (c *Client) pages(ctx context.Context, ref, pattern string, page func(raw []byte) (string, error)) error {
	seen := make(map[string]bool)
	for n := 0; ; n++ {
		if n == maxPages {
			return fmt.Errorf("more than %d pages", maxPages)
		}
		req, err := c.newRequest(ctx, "GET", ref, nil)
		if err != nil {
			return err
		}
		key := req.URL.String()
		if seen[key] {
			return fmt.Errorf("paging loop: next link repeats %s", req.URL.Path)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := c.do(req, pattern, &raw); err != nil {
			return err
		}
		if len(raw) == 0 {
			return nil
		}
		next, err := page(raw)
		if err != nil {
			return fmt.Errorf("decode page: %w", err)
		}
		if next == "" {
			return nil
		}
		if ref, err = c.linkURL(next); err != nil {
			return err
		}
	}
}

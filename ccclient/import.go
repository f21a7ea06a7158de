package ccclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Import limits from CC's docs. CC imports the first 4 MB of a body and
// drops the rest without an error; which "MB" is meant is unconfirmed, so
// the smaller reading is used.
const (
	MaxImportContacts = 40000
	MaxImportBytes    = 4000000
	MaxImportListIDs  = 50
)

// ErrImportTooLarge reports an import over MaxImportContacts contacts or
// MaxImportBytes encoded bytes; it was not sent. Split the batch.
var ErrImportTooLarge = errors.New("ccclient: import too large")

// ErrInvalidImport reports an import that CC would reject as a whole (no
// contacts, no list, or too many lists); it was not sent.
var ErrInvalidImport = errors.New("ccclient: invalid import")

// ImportContact is one contact of a bulk JSON import (CC's
// JsonImportContact). Empty strings are left out of the JSON, so an
// existing contact keeps whatever CC already has for that field.
type ImportContact struct {
	Email, FirstName, LastName, JobTitle, CompanyName string
	Phone, HomePhone, WorkPhone, MobilePhone          string
	Street, Street2, City, State, Zip, Country        string
	// BirthdayMonth (1–12) and BirthdayDay (1–31) are sent only as a valid
	// pair, because CC requires each with the other; 0 means unknown.
	BirthdayMonth, BirthdayDay int
	Anniversary                string
	// CustomFields maps a CC custom field name (not its label) to a value;
	// each is sent as "cf:<name>". CC allows 25 per contact and silently
	// ignores names it does not know.
	CustomFields map[string]string
}

// MarshalJSON encodes c with CC's snake_case keys, leaving out empty values.
// Custom fields follow the standard keys, sorted by name. Strings are
// escaped exactly as encoding/json escapes them, so json.Marshal returns
// these bytes unchanged and len(json.Marshal(c)) is the contact's share of
// an import body (plus one comma between contacts).
func (c ImportContact) MarshalJSON() ([]byte, error) {
	return c.appendJSON(make([]byte, 0, 256)), nil
}

func (c *ImportContact) appendJSON(b []byte) []byte {
	o := object{b: append(b, '{')}
	o.str("email", c.Email)
	o.str("first_name", c.FirstName)
	o.str("last_name", c.LastName)
	o.str("job_title", c.JobTitle)
	o.str("company_name", c.CompanyName)
	if c.BirthdayMonth >= 1 && c.BirthdayMonth <= 12 && c.BirthdayDay >= 1 && c.BirthdayDay <= 31 {
		o.int("birthday_month", c.BirthdayMonth)
		o.int("birthday_day", c.BirthdayDay)
	}
	o.str("anniversary", c.Anniversary)
	o.str("phone", c.Phone)
	o.str("home_phone", c.HomePhone)
	o.str("work_phone", c.WorkPhone)
	o.str("mobile_phone", c.MobilePhone)
	o.str("street", c.Street)
	o.str("street2", c.Street2)
	o.str("city", c.City)
	o.str("state", c.State)
	o.str("zip", c.Zip)
	o.str("country", c.Country)
	if len(c.CustomFields) > 0 {
		var buf [16]string // CC allows 25; most contacts carry a few
		names := buf[:0]
		for name, v := range c.CustomFields {
			if name != "" && !blank(v) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			o.customKey(name)
			o.b = appendString(o.b, c.CustomFields[name])
		}
	}
	return append(o.b, '}')
}

// sizeHint is the encoded length of c when nothing needs escaping: each
// member costs its key, its value and 4 bytes of quotes, colon and comma
// (the longest key, "mobile_phone", is 12 bytes; 16 is an upper bound).
func (c *ImportContact) sizeHint() int {
	n := 2 + 2*20 // braces; two birthday members
	for _, s := range [...]string{c.Email, c.FirstName, c.LastName, c.JobTitle, c.CompanyName, c.Anniversary,
		c.Phone, c.HomePhone, c.WorkPhone, c.MobilePhone, c.Street, c.Street2, c.City, c.State, c.Zip, c.Country} {
		if s != "" {
			n += len(s) + 16 + 4
		}
	}
	for k, v := range c.CustomFields {
		n += len(k) + len(v) + 3 + 6
	}
	return n
}

// ImportRequest is the body of POST /activities/contacts_json_import (CC's
// ContactsJsonImport). Every contact is added to every list in ListIDs.
type ImportRequest struct {
	ImportData []ImportContact `json:"import_data"`
	ListIDs    []string        `json:"list_ids"`
}

// MarshalJSON encodes r exactly as ImportContacts sends it.
func (r ImportRequest) MarshalJSON() ([]byte, error) {
	return r.appendJSON(nil), nil
}

func (r *ImportRequest) appendJSON(b []byte) []byte {
	if b == nil {
		// Size the buffer once: growing a multi-megabyte slice copies it
		// each time.
		n := 32
		for i := range r.ImportData {
			n += r.ImportData[i].sizeHint() + 1
		}
		for _, id := range r.ListIDs {
			n += len(id) + 3
		}
		b = make([]byte, 0, n)
	}
	b = append(b, `{"import_data":[`...)
	for i := range r.ImportData {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.ImportData[i].appendJSON(b)
	}
	b = append(b, `],"list_ids":[`...)
	for i, id := range r.ListIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, id)
	}
	return append(b, "]}"...)
}

// ImportContacts queues a bulk import and returns the activity CC created;
// poll it with GetActivity. Any 2xx is success (CC documents 201). The
// request is refused before sending with ErrImportTooLarge or
// ErrInvalidImport when CC would truncate or reject it.
//
// CC has no idempotency key: a resent import is queued again. It is harmless
// to the data (an upsert) but costs quota, so store the activity ID at once.
func (c *Client) ImportContacts(ctx context.Context, req *ImportRequest) (*Activity, error) {
	const op = "ccclient: import contacts"
	switch {
	case req == nil || len(req.ImportData) == 0:
		return nil, fmt.Errorf("%s: no contacts: %w", op, ErrInvalidImport)
	case len(req.ImportData) > MaxImportContacts:
		return nil, fmt.Errorf("%s: %d contacts, limit %d: %w", op, len(req.ImportData), MaxImportContacts, ErrImportTooLarge)
	case len(req.ListIDs) == 0:
		return nil, fmt.Errorf("%s: no list ids: %w", op, ErrInvalidImport)
	case len(req.ListIDs) > MaxImportListIDs:
		return nil, fmt.Errorf("%s: %d list ids, limit %d: %w", op, len(req.ListIDs), MaxImportListIDs, ErrInvalidImport)
	}
	for _, id := range req.ListIDs {
		if blank(id) {
			return nil, fmt.Errorf("%s: empty list id: %w", op, ErrInvalidImport)
		}
	}
	body := req.appendJSON(nil)
	if len(body) > MaxImportBytes {
		return nil, fmt.Errorf("%s: body is %d bytes, limit %d: %w", op, len(body), MaxImportBytes, ErrImportTooLarge)
	}
	hreq, err := c.newRequest(ctx, "POST", "activities/contacts_json_import", body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var a Activity
	if err := c.do(hreq, "/activities/contacts_json_import", &a); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if a.ActivityID == "" {
		// Queued, probably, but untrackable; the caller decides whether to
		// check GET /activities or resend.
		return nil, fmt.Errorf("%s: response has no activity_id", op)
	}
	return &a, nil
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// object appends the members of a JSON object, skipping blank strings.
type object struct {
	b    []byte
	more bool
}

func (o *object) key(k string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = appendString(o.b, k)
	o.b = append(o.b, ':')
}

// customKey writes the key "cf:<name>" without building the string.
func (o *object) customKey(name string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, `"cf:`...)
	o.b = appendStringBody(o.b, name)
	o.b = append(o.b, '"', ':')
}

func (o *object) str(k, v string) {
	if blank(v) {
		return
	}
	o.key(k)
	o.b = appendString(o.b, v)
}

func (o *object) int(k string, v int) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, int64(v), 10)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does by
// default: HTML-safe, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped, everything else (including non-ASCII) kept as UTF-8.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s)
	return append(b, '"')
}

// appendStringBody appends the escaped content of s without the quotes.
func appendStringBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// EncodedSize is the exact number of bytes c takes in an import body, as
// ImportContacts encodes it; callers split batches by it instead of
// guessing.
func EncodedSize(c *ImportContact) int {
	var buf [512]byte
	return len(c.appendJSON(buf[:0]))
}

// ImportEnvelopeSize is the size of an import body with no contacts: the
// keys, brackets and the encoded list ids. A body's size is this plus each
// contact's EncodedSize plus one comma between contacts.
func ImportEnvelopeSize(listIDs []string) int {
	r := ImportRequest{ListIDs: listIDs}
	return len(r.appendJSON(make([]byte, 0, 64)))
}

package hubspot

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned, wrapped with detail, by ParseWorkflow.
var (
	// ErrMalformed means the body is not a JSON object that can be read.
	ErrMalformed = errors.New("malformed workflow body")
	// ErrNoEmail means the body parsed but holds no usable email address,
	// so the enrollment cannot be imported; the wrapping error says whether
	// it was missing or invalid.
	ErrNoEmail = errors.New("no usable email")
	// ErrWebhooksAPI means the body is a JSON array, which is how the
	// Webhooks API (app subscriptions) delivers events, not a workflow.
	ErrWebhooksAPI = errors.New("webhooks api delivery, not a workflow body")
)

// maxEmailLen is the longest address that SMTP can carry (RFC 5321 §4.5.3.1
// and its errata); Constant Contact rejects longer ones anyway.
const maxEmailLen = 254

// FieldNames are the HubSpot property names (or, for a customised body, the
// keys) that hold the fields an Enrollment names. ParseWorkflow uses the
// default for any name left empty.
type FieldNames struct {
	Email, FirstName, LastName, Country, EnrolledAt string
}

// DefaultFieldNames returns HubSpot's internal names of the standard contact
// properties.
func DefaultFieldNames() FieldNames {
	return FieldNames{
		Email:      "email",
		FirstName:  "firstname",
		LastName:   "lastname",
		Country:    "country",
		EnrolledAt: "createdate",
	}
}

// withDefaults fills empty names from DefaultFieldNames, so that a
// configuration can override one name without restating the others.
func (n FieldNames) withDefaults() FieldNames {
	d := DefaultFieldNames()
	return FieldNames{
		Email:      cmp.Or(n.Email, d.Email),
		FirstName:  cmp.Or(n.FirstName, d.FirstName),
		LastName:   cmp.Or(n.LastName, d.LastName),
		Country:    cmp.Or(n.Country, d.Country),
		EnrolledAt: cmp.Or(n.EnrolledAt, d.EnrolledAt),
	}
}

// Enrollment is one record enrolled in the workflow, in the shape the rest of
// hs2cc works with whichever body style HubSpot sent.
type Enrollment struct {
	PortalID   int64     // 0 when the body has none
	ObjectID   string    // HubSpot object id as decimal text; "" when the body has none
	Email      string    // trimmed, as sent (case kept)
	FirstName  string    // trimmed
	LastName   string    // trimmed
	Country    string    // trimmed
	EnrolledAt time.Time // UTC; zero when absent or unparseable
	// Properties holds every property's current value as text, untrimmed.
	Properties map[string]string
	// SourceUpdatedAt is how recent HubSpot's data in the body is, so that a
	// late delivery can be told from a newer one (UTC; zero when the body
	// does not say). For a contact profile it is the newest version
	// timestamp of any property that is not HubSpot's own bookkeeping; a
	// body without versions falls back to lastmodifieddate or
	// hs_lastmodifieddate. It is not part of ContentHash: a retry that
	// HubSpot stamped anew still carries the same content.
	SourceUpdatedAt time.Time
}

// ParseWorkflow reads the body of a workflow "Send a webhook" request.
//
// A body with a "properties" object is the legacy contact profile that
// "Include all properties" sends (properties.<name>.value, vid, portal-id);
// any other object is a customised flat body whose scalar values are the
// properties. On ErrNoEmail the returned Enrollment is filled as far as the
// body allowed, so the caller can record the rejection against its object.
func ParseWorkflow(body []byte, names FieldNames) (Enrollment, error) {
	switch c, ok := firstByte(body); {
	case !ok:
		return Enrollment{}, fmt.Errorf("parse workflow: empty body: %w", ErrMalformed)
	case c == '{':
	case c == '[':
		return Enrollment{}, fmt.Errorf("parse workflow: %w", ErrWebhooksAPI)
	default:
		return Enrollment{}, fmt.Errorf("parse workflow: body is not a JSON object: %w", ErrMalformed)
	}
	top, err := decodeObject(body)
	if err != nil {
		return Enrollment{}, fmt.Errorf("parse workflow: %w: %w", ErrMalformed, err)
	}

	names = names.withDefaults()
	e := Enrollment{PortalID: int64(firstID(top, "portal-id", "portalId", "portal_id", "hs_portal_id"))}
	props, profile := top["properties"].(map[string]any)
	if profile {
		e.Properties = profileProperties(props)
		e.ObjectID = idText(firstID(top, "canonical-vid", "vid", "id"))
		if e.ObjectID == "" {
			e.ObjectID = idText(parseID(e.Properties["hs_object_id"]))
		}
		e.SourceUpdatedAt = newestVersion(props)
	} else {
		e.Properties = flatProperties(top)
		e.ObjectID = idText(firstID(top, "hs_object_id", "objectId", "vid"))
	}
	if e.SourceUpdatedAt.IsZero() {
		e.SourceUpdatedAt = lastModified(e.Properties)
	}
	e.FirstName = strings.TrimSpace(e.Properties[names.FirstName])
	e.LastName = strings.TrimSpace(e.Properties[names.LastName])
	e.Country = strings.TrimSpace(e.Properties[names.Country])
	e.EnrolledAt = parseTime(e.Properties[names.EnrolledAt])
	e.Email = strings.TrimSpace(e.Properties[names.Email])
	if e.Email == "" && profile {
		e.Email = strings.TrimSpace(identityEmail(top))
	}
	if err := checkEmail(e.Email, names.Email); err != nil {
		return e, fmt.Errorf("parse workflow: %w", err)
	}
	return e, nil
}

// firstByte returns the first byte that is not JSON whitespace, and false
// when there is none.
func firstByte(b []byte) (byte, bool) {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c, true
		}
	}
	return 0, false
}

// decodeObject parses body once into generic values. UseNumber keeps numbers
// as their literal text, so that ids beyond 2^53 and epoch milliseconds are
// neither rounded nor rendered with an exponent.
func decodeObject(body []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level object")
	}
	return top, nil
}

// profileProperties reads properties.<name>.value and ignores the value
// history in versions. A property given as a bare value is taken as it is,
// which is how the CRM v3 object API shapes records other than contacts.
func profileProperties(props map[string]any) map[string]string {
	out := make(map[string]string, len(props))
	for name, p := range props {
		v := p
		if obj, ok := p.(map[string]any); ok {
			v = obj["value"]
		}
		if s, ok := scalarText(v); ok {
			out[name] = s
		}
	}
	return out
}

// flatProperties takes every scalar value of a customised body. Nested
// objects and arrays are skipped because a property value is never one.
func flatProperties(top map[string]any) map[string]string {
	out := make(map[string]string, len(top))
	for name, v := range top {
		if s, ok := scalarText(v); ok {
			out[name] = s
		}
	}
	return out
}

// scalarText renders a JSON scalar as property text: strings as they are,
// numbers in their literal form, booleans as "true" or "false". It reports
// false for null, objects and arrays, which carry no property value.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// firstID returns the first positive integer id found under keys, as a JSON
// number or as decimal text, or 0.
func firstID(top map[string]any, keys ...string) uint64 {
	for _, k := range keys {
		var id uint64
		switch v := top[k].(type) {
		case json.Number:
			id = parseID(string(v))
		case string:
			id = parseID(v)
		}
		if id > 0 {
			return id
		}
	}
	return 0
}

// parseID parses a decimal id that fits in an int64, or returns 0.
func parseID(s string) uint64 {
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 63)
	if err != nil {
		return 0
	}
	return id
}

// idText renders an id canonically, so that "0101" and 101 dedupe alike.
func idText(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

// identityEmail returns the EMAIL identity of a legacy contact profile,
// preferring the primary one, for profiles whose email property is missing.
func identityEmail(top map[string]any) string {
	var first string
	profiles, _ := top["identity-profiles"].([]any)
	for _, p := range profiles {
		profile, _ := p.(map[string]any)
		ids, _ := profile["identities"].([]any)
		for _, id := range ids {
			ident, _ := id.(map[string]any)
			value, _ := ident["value"].(string)
			if ident["type"] != "EMAIL" || strings.TrimSpace(value) == "" {
				continue
			}
			if ident["is-primary"] == true {
				return value
			}
			if first == "" {
				first = value
			}
		}
	}
	return first
}

// checkEmail reports why email cannot be imported, or nil. It accepts only a
// bare addr-spec: net/mail also accepts a display name ("Ann <a@b.com>") or
// a comment, which Constant Contact would not, so the parsed address must be
// the whole input.
func checkEmail(email, name string) error {
	if email == "" {
		return fmt.Errorf("%w: missing %q", ErrNoEmail, name)
	}
	invalid := len(email) > maxEmailLen
	if !invalid {
		a, err := mail.ParseAddress(email)
		invalid = err != nil || a.Address != email
	}
	if invalid {
		return fmt.Errorf("%w: invalid %.80q", ErrNoEmail, email)
	}
	return nil
}

// parseTime reads a date property: epoch milliseconds (HubSpot's format),
// RFC 3339 or a plain YYYY-MM-DD date. It returns the zero time for anything
// else, including times that MySQL cannot store.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if ms, err := strconv.ParseUint(s, 10, 63); err == nil {
		return millisTime(int64(ms))
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil && !t.Before(minTime) && t.Before(maxTime) {
			return t.UTC()
		}
	}
	return time.Time{}
}

// The times a DATETIME column holds on MySQL and MariaDB. A time outside
// them (a fuzzed or garbled epoch value) would make every insert of the
// delivery fail, and HubSpot retry it for days, so it is read as absent.
var (
	minTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// millisTime converts epoch milliseconds, HubSpot's format for every time
// it sends, to UTC; it returns the zero time for 0 and for values beyond
// what MySQL can store.
func millisTime(ms int64) time.Time {
	if ms <= 0 || ms >= maxTime.UnixMilli() {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// jsonMillis reads epoch milliseconds given as a JSON number or as decimal
// text, and returns the zero time for anything else.
func jsonMillis(v any) time.Time {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return time.Time{}
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return millisTime(ms)
}

// newestVersion returns the newest versions[].timestamp among the profile's
// properties. Bookkeeping properties are skipped for the reason
// ContentHash skips them: HubSpot bumps them on a retry, and a retry must
// not look newer than the change it repeats.
func newestVersion(props map[string]any) time.Time {
	var newest time.Time
	for name, p := range props {
		if volatileProperty(name) {
			continue
		}
		obj, _ := p.(map[string]any)
		versions, _ := obj["versions"].([]any)
		for _, v := range versions {
			ver, _ := v.(map[string]any)
			if t := jsonMillis(ver["timestamp"]); t.After(newest) {
				newest = t
			}
		}
	}
	return newest
}

// lastModified returns the newer of the lastmodifieddate and
// hs_lastmodifieddate properties, the only sign of age that a customised
// body or a profile without versions may carry.
func lastModified(props map[string]string) time.Time {
	a := parseTime(props["lastmodifieddate"])
	if b := parseTime(props["hs_lastmodifieddate"]); b.After(a) {
		return b
	}
	return a
}

// volatileProperty reports whether HubSpot changes a property on its own, so
// that it must not make a retried delivery look like new content. The list is
// kept to bookkeeping: modification stamps, and the web-analytics counters
// that tracking bumps on every page view.
func volatileProperty(name string) bool {
	switch name {
	case "lastmodifieddate",
		"hs_lastmodifieddate",
		"hs_analytics_last_timestamp",
		"hs_analytics_last_visit_timestamp",
		"hs_analytics_num_page_views",
		"hs_analytics_num_visits":
		return true
	}
	return false
}

// ContentHash returns a stable hex SHA-256 over the enrollment's fields and
// its non-volatile properties in name order, so that a retried delivery
// hashes equal and a changed record does not. Every string is length-prefixed,
// so no two different enrollments can encode to the same input.
func (e Enrollment) ContentHash() string {
	b := make([]byte, 0, 512)
	b = appendField(b, "hs2cc-enrollment-v1")
	b = appendField(b, strconv.FormatInt(e.PortalID, 10))
	b = appendField(b, e.ObjectID)
	b = appendField(b, e.Email)
	b = appendField(b, e.FirstName)
	b = appendField(b, e.LastName)
	b = appendField(b, e.Country)
	var enrolled string
	if !e.EnrolledAt.IsZero() {
		enrolled = strconv.FormatInt(e.EnrolledAt.UnixMilli(), 10)
	}
	b = appendField(b, enrolled)
	for _, name := range slices.Sorted(maps.Keys(e.Properties)) {
		if !volatileProperty(name) {
			b = appendField(appendField(b, name), e.Properties[name])
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// ObjectKey returns the dedupe key of the enrollment within its portal: the
// object id when the body has one, else "email:" and the lower-cased email,
// because a customised body need not include the id.
func (e Enrollment) ObjectKey() string {
	key := e.ObjectID
	if key == "" {
		key = "email:" + strings.ToLower(e.Email)
	}
	if len(key) > MaxObjectKey {
		// A long email (up to 254 bytes is usable) must still fit a unique
		// index; a hash keeps the key stable and distinct.
		sum := sha256.Sum256([]byte(key))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// MaxObjectKey is the longest key ObjectKey returns, the width of the
// store's unique index column.
const MaxObjectKey = 191

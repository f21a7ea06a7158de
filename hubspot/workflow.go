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
	start := skipSpace(body, 0)
	switch {
	case start == len(body):
		return Enrollment{}, fmt.Errorf("parse workflow: empty body: %w", ErrMalformed)
	case body[start] == '{':
	case body[start] == '[':
		return Enrollment{}, fmt.Errorf("parse workflow: %w", ErrWebhooksAPI)
	default:
		return Enrollment{}, fmt.Errorf("parse workflow: body is not a JSON object: %w", ErrMalformed)
	}
	if !json.Valid(body) {
		return Enrollment{}, fmt.Errorf("parse workflow: %w: %w", ErrMalformed, objectSyntaxError(body))
	}
	obj := body[start:]
	top := readWorkflowTop(obj)

	names = names.withDefaults()
	e := Enrollment{PortalID: int64(firstID(top.portalID[:]...))}
	profile := isObject(top.properties)
	if profile {
		e.Properties, e.SourceUpdatedAt = top.props, top.newest
		e.ObjectID = idText(firstID(top.canonicalVID, top.vid, top.id))
		if e.ObjectID == "" {
			e.ObjectID = idText(parseID(e.Properties["hs_object_id"]))
		}
	} else {
		e.Properties = flatProperties(obj)
		e.ObjectID = idText(firstID(top.hsObjectID, top.objectID, top.vid))
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
		e.Email = strings.TrimSpace(identityEmail(top.identityProfiles))
	}
	if err := checkEmail(e.Email, names.Email); err != nil {
		return e, fmt.Errorf("parse workflow: %w", err)
	}
	return e, nil
}

// objectSyntaxError explains why a body that starts like an object is not
// valid JSON. The explanation is stored as the reason of the rejected
// delivery, and operators and tests match its text, so it comes from
// json.Decoder as it always has rather than from json.Valid, which gives
// none; only malformed bodies take this path.
func objectSyntaxError(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil {
		return err
	}
	return errors.New("data after the top-level object")
}

// workflowTop holds what ParseWorkflow reads from the top-level object by
// name: raw values, each from the member's last occurrence as encoding/json
// would keep it and nil when absent, and the profile's properties.
type workflowTop struct {
	properties, identityProfiles []byte
	// portalID holds portal-id, portalId, portal_id and hs_portal_id, in
	// the order they are preferred.
	portalID                                    [4][]byte
	canonicalVID, vid, id, hsObjectID, objectID []byte

	// props and newest are read from properties when it is an object.
	props  map[string]string
	newest time.Time
}

// readWorkflowTop walks the top-level object obj once, reading the
// properties of a profile on the way instead of skipping over them first.
func readWorkflowTop(obj []byte) workflowTop {
	var top workflowTop
	for it := members(obj, 0); it.next(); {
		switch string(memberName(it.key)) {
		case "properties":
			start := it.i
			if it.peek() == '{' {
				var end int
				top.props, top.newest, end = profileProperties(obj, start)
				it.consumed(end)
			} else {
				it.value()
			}
			top.properties = obj[start:it.i]
		case "identity-profiles":
			top.identityProfiles = it.value()
		case "portal-id":
			top.portalID[0] = it.value()
		case "portalId":
			top.portalID[1] = it.value()
		case "portal_id":
			top.portalID[2] = it.value()
		case "hs_portal_id":
			top.portalID[3] = it.value()
		case "canonical-vid":
			top.canonicalVID = it.value()
		case "vid":
			top.vid = it.value()
		case "id":
			top.id = it.value()
		case "hs_object_id":
			top.hsObjectID = it.value()
		case "objectId":
			top.objectID = it.value()
		}
	}
	return top
}

// profileProperties reads properties.<name>.value from the object that
// starts at b[i], and returns it with the newest versions[].timestamp of the
// properties that are not bookkeeping and the index just past the object.
// A property given as a bare value is taken as it is, which is how the CRM
// v3 object API shapes records other than contacts.
//
// Bookkeeping properties are left out of the newest version for the reason
// ContentHash skips them: HubSpot bumps them on a retry, and a retry must
// not look newer than the change it repeats.
func profileProperties(b []byte, i int) (map[string]string, time.Time, int) {
	var text [1024]byte
	var entries [32]propertyEntry
	p := propertyTexts{text: text[:0], entries: entries[:0]}
	it := members(b, i)
	for it.next() {
		if it.peek() != '{' {
			p = p.add(it.key, it.value(), time.Time{})
			continue
		}
		value, newest, end := propertyParts(b, it.i)
		it.consumed(end)
		p = p.add(it.key, value, newest)
	}
	props, newest := p.properties()
	return props, newest, it.i
}

// propertyTexts gathers properties in the order they appear, with the text
// of every name and value in one buffer, so that properties can make the
// map with one allocation for all the text and one for the map, instead of
// one for each string and several more as the map grows. The callers start
// it on arrays of their own, which hold most bodies without allocating.
type propertyTexts struct {
	text    []byte
	entries []propertyEntry
}

// propertyEntry is one property: its name is text[start:nameEnd] and its
// value text[nameEnd:end].
type propertyEntry struct {
	start, nameEnd, end int
	scalar              bool      // false when the property has no value
	newest              time.Time // the newest version of the property
}

// add appends the property with the quoted name key, the raw value, and
// the newest version in its history. It takes and returns p by value
// because escape analysis would move the callers' arrays to the heap if it
// appended through a pointer.
func (p propertyTexts) add(key, value []byte, newest time.Time) propertyTexts {
	e := propertyEntry{start: len(p.text), newest: newest}
	p.text = appendUnquoted(p.text, key)
	e.nameEnd = len(p.text)
	p.text, e.scalar = appendScalar(p.text, value)
	e.end = len(p.text)
	p.entries = append(p.entries, e)
	return p
}

// properties returns the properties with a scalar value, and the newest
// version of those that are not bookkeeping. Like encoding/json, it lets
// the last occurrence of a name replace the earlier ones, value and history
// alike.
func (p propertyTexts) properties() (map[string]string, time.Time) {
	text := string(p.text)
	out := make(map[string]string, len(p.entries))
	for _, e := range p.entries {
		out[text[e.start:e.nameEnd]] = text[e.nameEnd:e.end]
	}
	// last is made only when a name occurs more than once, to tell its
	// last occurrence from the others.
	var last map[string]int
	if len(out) < len(p.entries) {
		last = make(map[string]int, len(out))
		for i, e := range p.entries {
			last[text[e.start:e.nameEnd]] = i
		}
	}
	var newest time.Time
	for i, e := range p.entries {
		name := text[e.start:e.nameEnd]
		if last != nil && last[name] != i {
			continue
		}
		if !e.scalar {
			delete(out, name)
		}
		if !volatileProperty(name) && e.newest.After(newest) {
			newest = e.newest
		}
	}
	return out, newest
}

// propertyParts reads the profile property object that starts at b[i]:
// its value, the newest timestamp of its version history, and the index
// just past it.
func propertyParts(b []byte, i int) (value []byte, newest time.Time, end int) {
	it := members(b, i)
	for it.next() {
		switch string(memberName(it.key)) {
		case "value":
			value = it.value()
		case "versions":
			newest, end = newestIn(b, it.i)
			it.consumed(end)
		}
	}
	return value, newest, it.i
}

// newestIn returns the newest timestamp in the version history that starts
// at b[i], or the zero time, and the index just past the history.
func newestIn(b []byte, i int) (time.Time, int) {
	var newest time.Time
	if b[i] != '[' {
		return newest, skipValue(b, i)
	}
	vs := elements(b, i)
	for vs.next() {
		if vs.peek() != '{' {
			continue
		}
		var ts []byte
		v := members(b, vs.i)
		for v.next() {
			if string(memberName(v.key)) == "timestamp" {
				ts = v.value()
			}
		}
		vs.consumed(v.i)
		if t := jsonMillis(ts); t.After(newest) {
			newest = t
		}
	}
	return newest, vs.i
}

// flatProperties takes every scalar member of a customised body. Nested
// objects and arrays are skipped because a property value is never one; a
// later member replaces an earlier one of the same name, whatever its kind.
func flatProperties(obj []byte) map[string]string {
	var text [1024]byte
	var entries [32]propertyEntry
	p := propertyTexts{text: text[:0], entries: entries[:0]}
	for it := members(obj, 0); it.next(); {
		p = p.add(it.key, it.value(), time.Time{})
	}
	props, _ := p.properties()
	return props
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

// identityEmail returns the EMAIL identity of a legacy contact profile from
// its identity-profiles member, preferring the primary one, for profiles
// whose email property is missing.
func identityEmail(profiles []byte) string {
	var first string
	if !isArray(profiles) {
		return first
	}
	for ps := elements(profiles, 0); ps.next(); {
		p := ps.value()
		if !isObject(p) {
			continue
		}
		ids := lastMember(p, "identities")
		if !isArray(ids) {
			continue
		}
		for is := elements(ids, 0); is.next(); {
			id := is.value()
			if !isObject(id) {
				continue
			}
			var typ, value, primary []byte
			for it := members(id, 0); it.next(); {
				switch string(memberName(it.key)) {
				case "type":
					typ = it.value()
				case "value":
					value = it.value()
				case "is-primary":
					primary = it.value()
				}
			}
			if len(typ) == 0 || typ[0] != '"' || unquote(typ) != "EMAIL" ||
				len(value) == 0 || value[0] != '"' {
				continue
			}
			v := unquote(value)
			if strings.TrimSpace(v) == "" {
				continue
			}
			if string(primary) == "true" {
				return v
			}
			if first == "" {
				first = v
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
	if plainAddress(email) {
		return nil
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

// plainAddress reports whether email is an address of the common shape
// local@domain, both dot-atoms of printable ASCII, no longer than
// maxEmailLen. mail.ParseAddress accepts every such address as it is, so
// checkEmail skips it for them and its five allocations with it; any other
// shape, such as a quoted local part or a non-ASCII letter, is left to
// mail.ParseAddress.
func plainAddress(email string) bool {
	if len(email) > maxEmailLen {
		return false
	}
	at := strings.IndexByte(email, '@')
	return at >= 0 && dotAtom(email[:at]) && dotAtom(email[at+1:])
}

// dotAtom reports whether s is a dot-atom of RFC 5322 §3.2.3 in ASCII:
// atext characters in runs separated by single dots.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case c < '!' || c > '~' || strings.IndexByte(`"(),:;<>@[\]`, c) >= 0:
			return false
		}
	}
	return true
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
// so no two different enrollments can encode to the same input. The hash is
// stored, so the encoding must never change.
func (e Enrollment) ContentHash() string {
	// The properties are sorted as pairs, on the stack for most profiles,
	// so that the values need no second lookup in the map.
	type property struct{ name, value string }
	var pairs [64]property
	props := pairs[:0]
	for name, value := range e.Properties {
		if !volatileProperty(name) {
			props = append(props, property{name, value})
		}
	}
	slices.SortFunc(props, func(a, b property) int { return strings.Compare(a.name, b.name) })

	var buf [1024]byte
	b := appendField(buf[:0], "hs2cc-enrollment-v1")
	b = appendIntField(b, e.PortalID)
	b = appendField(b, e.ObjectID)
	b = appendField(b, e.Email)
	b = appendField(b, e.FirstName)
	b = appendField(b, e.LastName)
	b = appendField(b, e.Country)
	if e.EnrolledAt.IsZero() {
		b = appendField(b, "")
	} else {
		b = appendIntField(b, e.EnrolledAt.UnixMilli())
	}
	for _, p := range props {
		b = appendField(appendField(b, p.name), p.value)
	}
	sum := sha256.Sum256(b)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	return string(hexSum[:])
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendIntField appends n in decimal as appendField would append its
// text, without making the text a string first.
func appendIntField(b []byte, n int64) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	return append(binary.AppendUvarint(b, uint64(len(d))), d...)
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

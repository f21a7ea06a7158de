package hubspot

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The parsers read HubSpot's bodies in two steps: json.Valid checks the
// whole body with encoding/json's own scanner, so that exactly the bodies
// encoding/json accepts are accepted, and then the helpers below walk the
// checked bytes and turn into Go values only the few members that an
// Enrollment or an Event needs. Decoding into map[string]any would build a
// map, a slice or a string for every value of a profile, version histories
// and form submissions included, only to drop nearly all of them.
//
// The walkers assume valid JSON and do not check it again. They still stop
// at the end of their input rather than index past it, so that a bug shows
// as a wrong value in the fuzz tests and not as a panic in production.

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts with the
// quote at b[i]. A byte loop does as well here as bytes.IndexByte with a
// check for escaped quotes, since most strings in a profile are short.
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(b)
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	// A number, true, false or null runs up to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// objectIter walks the members of a JSON object in the order they appear.
// Like encoding/json, the callers let a later member with the same name
// replace an earlier one.
//
// After next, i is where the member's value starts. The caller either takes
// the raw value with value, or reads the value in place and reports where
// it ends with consumed, so that a large value such as a profile's
// properties is walked once instead of skipped first and read again; a
// value left untouched is skipped by the following next. Once next reports
// false, i is just past the object's closing brace.
type objectIter struct {
	cursor
	key []byte // the current member's quoted name
}

// cursor is what objectIter and arrayIter share: where they are in b, and
// how to read or skip the value there.
type cursor struct {
	b       []byte
	i       int
	pending bool // the current value has not been passed yet
}

// peek returns the first byte of the current value.
func (c *cursor) peek() byte { return c.b[c.i] }

// value returns the current value and moves past it.
func (c *cursor) value() []byte {
	start := c.i
	c.i = skipValue(c.b, start)
	c.pending = false
	return c.b[start:c.i]
}

// consumed moves past a value that the caller has read up to end.
func (c *cursor) consumed(end int) {
	c.i = end
	c.pending = false
}

// members returns an iterator over the object that starts at b[i].
func members(b []byte, i int) objectIter {
	return objectIter{cursor: cursor{b: b, i: i + 1}}
}

// next moves to the next member and reports whether there is one.
func (it *objectIter) next() bool {
	if it.pending {
		it.value()
	}
	i := skipSpace(it.b, it.i)
	if i < len(it.b) && it.b[i] == ',' {
		i = skipSpace(it.b, i+1)
	}
	if i >= len(it.b) || it.b[i] != '"' {
		it.i = min(i+1, len(it.b))
		return false
	}
	end := skipString(it.b, i)
	it.key = it.b[i:end]
	i = skipSpace(it.b, end) // This is the colon after the name.
	it.i = skipSpace(it.b, i+1)
	it.pending = it.i < len(it.b)
	return it.pending
}

// arrayIter walks the elements of a JSON array the way objectIter walks
// members: after next, i is where the element starts.
type arrayIter struct {
	cursor
}

// elements returns an iterator over the array that starts at b[i].
func elements(b []byte, i int) arrayIter {
	return arrayIter{cursor{b: b, i: i + 1}}
}

// next moves to the next element and reports whether there is one.
func (it *arrayIter) next() bool {
	if it.pending {
		it.value()
	}
	i := skipSpace(it.b, it.i)
	if i < len(it.b) && it.b[i] == ',' {
		i = skipSpace(it.b, i+1)
	}
	if i >= len(it.b) || it.b[i] == ']' {
		it.i = min(i+1, len(it.b))
		return false
	}
	it.i = i
	it.pending = true
	return true
}

// isObject and isArray report the kind of a raw value; nil, the value of a
// member that is absent, is neither.
func isObject(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }
func isArray(raw []byte) bool  { return len(raw) > 0 && raw[0] == '[' }

// memberName returns the text of a quoted member name. It allocates only
// for a name with escapes, so that comparing or switching on the result of
// string(memberName(key)) costs nothing for the names HubSpot sends.
func memberName(key []byte) []byte {
	s := key[1 : len(key)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		// Without escapes the text is the bytes themselves, except that
		// encoding/json replaces invalid UTF-8 with U+FFFD. That matters
		// only for a name that goes into a map, which unquote covers; an
		// invalid name compared with an ASCII one differs either way.
		return s
	}
	return []byte(unquote(key))
}

// lastMember returns the raw value of the last member of obj named name, or
// nil. The name must be ASCII.
func lastMember(obj []byte, name string) []byte {
	var v []byte
	for it := members(obj, 0); it.next(); {
		if string(memberName(it.key)) == name {
			v = it.value()
		}
	}
	return v
}

// unquote returns the text of a JSON string exactly as encoding/json
// decodes it.
func unquote(raw []byte) string {
	s := raw[1 : len(raw)-1]
	if plainText(s) {
		return string(s)
	}
	return string(appendUnescaped(make([]byte, 0, len(s)), s))
}

// appendUnquoted appends the text of the JSON string raw to dst.
func appendUnquoted(dst, raw []byte) []byte {
	s := raw[1 : len(raw)-1]
	if plainText(s) {
		return append(dst, s...)
	}
	return appendUnescaped(dst, s)
}

// plainText reports whether the content of a JSON string is its text as it
// is: without escapes and valid UTF-8, as nearly every string HubSpot
// sends is.
func plainText(s []byte) bool {
	return bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s)
}

// appendUnescaped decodes the content of a JSON string that json.Valid
// accepted and appends it to dst, following encoding/json's rules to the
// letter: an escaped surrogate pair becomes one rune, an unpaired surrogate
// and every byte of invalid UTF-8 become U+FFFD. Profiles need it often,
// since HubSpot escapes every non-ASCII letter of a name, and calling
// json.Unmarshal for each such string would scan it twice and allocate
// three times.
func appendUnescaped(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\' && r+1 < len(s):
			switch e := s[r+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+1 < len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							rr = dec
							r += 6
						}
					}
					if utf16.IsSurrogate(rr) {
						rr = unicode.ReplacementChar
					}
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\' and '/' stand for themselves.
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr) // A byte of invalid UTF-8 becomes U+FFFD.
			r += size
		}
	}
	return dst
}

// hex4 reads the four hex digits of a \u escape, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendScalar appends the property text of the raw JSON scalar raw to dst
// as scalarText renders it, and reports false, appending nothing, when raw
// carries no property value.
func appendScalar(dst, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return dst, false
	}
	switch raw[0] {
	case '"':
		return appendUnquoted(dst, raw), true
	case 't':
		return append(dst, "true"...), true
	case 'f':
		return append(dst, "false"...), true
	case 'n', '{', '[':
		return dst, false
	}
	return append(dst, raw...), true
}

// scalarText renders a raw JSON scalar as property text: strings decoded,
// numbers in their literal form (as json.Number keeps them), booleans as
// "true" or "false". It reports false for null, objects, arrays and an
// absent value, which carry no property value.
func scalarText(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		return unquote(raw), true
	case 't':
		return "true", true
	case 'f':
		return "false", true
	case 'n', '{', '[':
		return "", false
	}
	return string(raw), true
}

// isNumber reports whether raw is a JSON number.
func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

// jsonID reads a positive integer id given as a JSON number or as decimal
// text, and returns 0 for anything else.
func jsonID(raw []byte) uint64 {
	switch {
	case isNumber(raw):
		return parseID(string(raw))
	case len(raw) > 0 && raw[0] == '"':
		return parseID(unquote(raw))
	}
	return 0
}

// firstID returns the first positive id among raws, or 0.
func firstID(raws ...[]byte) uint64 {
	for _, raw := range raws {
		if id := jsonID(raw); id > 0 {
			return id
		}
	}
	return 0
}

// jsonMillis reads epoch milliseconds given as a JSON number or as decimal
// text, and returns the zero time for anything else.
func jsonMillis(raw []byte) time.Time {
	var s string
	switch {
	case isNumber(raw):
		s = string(raw)
	case len(raw) > 0 && raw[0] == '"':
		s = unquote(raw)
	default:
		return time.Time{}
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return millisTime(ms)
}

package hubspot

import (
	"fmt"
	"net/mail"
	"strings"
)

// maxEmailLen is the longest address that SMTP can carry (RFC 5321 §4.5.3.1
// and its errata); Constant Contact rejects longer ones anyway.
const maxEmailLen = 254

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

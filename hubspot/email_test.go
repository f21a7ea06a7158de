package hubspot

import (
	"net/mail"
	"strings"
	"testing"
)

func TestParseWorkflowLongestEmail(t *testing.T) {
	email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	if len(email) != maxEmailLen {
		t.Fatalf("test email is %d bytes", len(email))
	}
	if _, err := ParseWorkflow([]byte(`{"email":"`+email+`"}`), DefaultFieldNames()); err != nil {
		t.Errorf("254-byte email: %v", err)
	}
}

// FuzzPlainAddress holds the shortcut of checkEmail to net/mail: every
// address it lets through must be one that mail.ParseAddress accepts as
// it is.
func FuzzPlainAddress(f *testing.F) {
	for _, s := range []string{"a@b", "Agent.Ylla@Example.com", "a..b@c", ".a@b", "a@b.", "a@b@c", "!#$%&'*+-/=?^_`{|}~@x",
		`"a"@b`, "a(b)@c", "a@[1.2.3.4]", "ä@b", "a b@c", "a@b c", "a\\b@c", "a@b]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		if !plainAddress(email) {
			return
		}
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			t.Fatalf("plainAddress(%q) but mail.ParseAddress = %v, %v", email, a, err)
		}
	})
}

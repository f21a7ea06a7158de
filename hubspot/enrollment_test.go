package hubspot

import (
	"strings"
	"testing"
)

func TestObjectKey(t *testing.T) {
	tests := []struct {
		e    Enrollment
		want string
	}{
		{Enrollment{ObjectID: "101", Email: "A@B.com"}, "101"},
		{Enrollment{Email: "Agent@Example.COM"}, "email:agent@example.com"},
		{Enrollment{Email: strings.Repeat("a", 240) + "@x.co"}, "sha256:"},
		{Enrollment{ObjectID: strings.Repeat("9", 300)}, "sha256:"},
	}
	for _, tt := range tests {
		got := tt.e.ObjectKey()
		if len(got) > MaxObjectKey {
			t.Errorf("ObjectKey is %d bytes, over %d", len(got), MaxObjectKey)
		}
		if tt.want == "sha256:" {
			if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
				t.Errorf("long key %q, want a sha256 key", got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ObjectKey(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestFieldNamesDefaults(t *testing.T) {
	got := FieldNames{Email: "work_email"}.withDefaults()
	want := DefaultFieldNames()
	want.Email = "work_email"
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

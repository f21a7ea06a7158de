package trace

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	known := []string{"ann@example.com", "Anne@Example.com", "ann@example.org", "bob@example.com", "zoe@other.net"}
	tests := []struct {
		name       string
		email      string
		candidates []string
		n          int
		want       []string
	}{
		{"a typo in the domain", "ann@exampel.com", known, 2, []string{"ann@example.com", "anne@example.com"}},
		{"one letter short", "an@example.com", known, 2, []string{"ann@example.com", "anne@example.com"}},
		// At equal distance the same domain comes first, then the alphabet.
		{"same distance", "ann@a.io", []string{"ann@b.io", "amm@a.io", "anm@a.io", "ann@c.io"}, 4,
			[]string{"anm@a.io", "ann@b.io", "ann@c.io", "amm@a.io"}},
		{"case ignored, never itself, each once", "ANN@EXAMPLE.COM", append(known, "ANNE@example.com"), 2,
			[]string{"anne@example.com", "bob@example.com"}},
		{"fewer candidates than asked for", "zoe@other.net", []string{"zoe@other.net", "zoey@other.net"}, 5, []string{"zoey@other.net"}},
		{"no candidates", "ann@example.com", nil, 5, []string{}},
		{"none wanted", "ann@example.com", known, 0, []string{}},
	}
	for _, tt := range tests {
		if got := Closest(tt.email, tt.candidates, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Closest(%q) = %q, want %q", tt.name, tt.email, got, tt.want)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"ann", "anne", 1},
		{"zürich", "zurich", 1}, {"flaw", "lawn", 2},
	} {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

package hubspot

import (
	"encoding/json"
	"testing"
)

var unquoteSeeds = []string{
	``, `a`, `Yll\u00e4`, `\u00d8ster-Kallstr\u00f6m`, `\"\\\/\b\f\n\r\t`, `\u0000`, `\ud83d\ude00`, `\ud83d`, `\ude00`,
	`\ud83dx`, `\ud83d\u0041`, `\ud83d\ud83d\ude00`, `\uDBFF\uDFFF`, "\xff", "a\xc3", "\xed\xa0\x80", "ä€😀", `\\u0041`,
}

func TestUnquote(t *testing.T) {
	for _, s := range unquoteSeeds {
		checkUnquote(t, []byte(`"`+s+`"`))
	}
}

// FuzzUnquote holds unquote to encoding/json's decoding of every string
// that json.Valid accepts.
func FuzzUnquote(f *testing.F) {
	for _, s := range unquoteSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if raw := []byte(`"` + s + `"`); json.Valid(raw) {
			checkUnquote(t, raw)
		}
	})
}

func checkUnquote(t *testing.T, raw []byte) {
	t.Helper()
	var want string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("json.Unmarshal(%q): %v", raw, err)
	}
	if got := unquote(raw); got != want {
		t.Errorf("unquote(%q) = %q, want %q", raw, got, want)
	}
}

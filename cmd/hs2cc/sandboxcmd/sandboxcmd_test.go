package sandboxcmd

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestSandboxFlags: a flag the sandbox would refuse is an error, never
// ccsandbox.New's panic; the banner names the settings that point the
// bridge at the sandbox, and the faults with the seed that repeats them
// only when some are on.
func TestSandboxFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
		want    []string // in the banner
		notWant []string
	}{
		{name: "defaults", want: []string{"HS2CC_CC_API_URL=http://sb.test/v3", "HS2CC_CC_AUTH_URL=http://sb.test/oauth2/default/v1", "stats:    http://sb.test/sandbox/stats"},
			notWant: []string{"faults:"}},
		{name: "faults", args: []string{"--cc-fail-rate", "0.05", "--cc-drop-rate", "0.01", "--cc-seed", "42"},
			want: []string{"fail rate 0.05", "drop rate 0.01", "--cc-seed 42 repeats them"}},
		{name: "rate above one", args: []string{"--cc-throttle-rate", "1.5"}, wantErr: "ThrottleRate"},
		{name: "unknown refresh mode", args: []string{"--cc-refresh-tokens", "forever"}, wantErr: "refresh mode"},
		{name: "unknown reject detail", args: []string{"--cc-reject-detail", "shout"}, wantErr: "shout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Flags
			fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
			f.Register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			sb, err := f.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			f.Banner(&out, "http://sb.test", sb)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("banner lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("banner has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

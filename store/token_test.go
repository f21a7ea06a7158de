package store_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// testClock is a clock the tests move by hand. It is locked because the
// concurrent tests read it from several goroutines, and -race must stay
// quiet about that.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clockStart is a fixed instant with whole seconds, so that DATETIME(6)
// round trips compare exactly.
var clockStart = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

func mustKeys(t *testing.T, s string) *store.TokenKeys {
	t.Helper()
	k, err := store.ParseTokenKeys(s)
	if err != nil {
		t.Fatalf("ParseTokenKeys: %v", err)
	}
	return k
}

// keyedDB returns a fresh migrated store that seals with a new random key,
// and that key's parsed form.
func keyedDB(t *testing.T) (*store.DB, *store.TokenKeys) {
	t.Helper()
	db := storetest.MySQL(t)
	k := mustKeys(t, store.NewTokenKey())
	db.SetTokenKeys(k)
	return db, k
}

// rawToken is the cc_tokens row exactly as MySQL holds it, read around the
// store's API so that the tests see what a database dump would show.
type rawToken struct {
	Access, Refresh, KeyID, Status, Reason, Owner string
	Version                                       int64
}

func readRawToken(t *testing.T, db *store.DB) rawToken {
	t.Helper()
	var r rawToken
	err := db.SQL().QueryRow(`SELECT access_token, refresh_token, key_id, status, status_reason, refresh_owner, version
		FROM cc_tokens WHERE id = 1`).Scan(&r.Access, &r.Refresh, &r.KeyID, &r.Status, &r.Reason, &r.Owner, &r.Version)
	if err != nil {
		t.Fatalf("read raw token row: %v", err)
	}
	return r
}

// assertSealed fails when the raw row shows either token in plain text or
// is not sealed under keyID.
func assertSealed(t *testing.T, db *store.DB, keyID string, secrets ...string) rawToken {
	t.Helper()
	for _, s := range secrets {
		// A short secret can turn up in random base64 by chance.
		if s != "" && len(s) < 8 {
			t.Fatalf("secret %q is too short to search the ciphertext for", s)
		}
	}
	r := readRawToken(t, db)
	for _, col := range []string{r.Access, r.Refresh} {
		if !strings.HasPrefix(col, "hs2cc-aesgcm-v1:") {
			t.Errorf("stored column %.40q… is not sealed", col)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(col, s) {
				t.Errorf("stored column holds the token %q in plain text", s)
			}
		}
	}
	if r.KeyID != keyID {
		t.Errorf("key_id = %q, want %q", r.KeyID, keyID)
	}
	return r
}

// testKeyRaw is a fixed key whose base64 forms contain '+', '/', '-' and
// '_', so that the standard and URL alphabets really differ for it.
var testKeyRaw = func() []byte {
	b := make([]byte, 0, 32)
	for len(b) < 30 {
		b = append(b, 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff)
	}
	return append(b[:30], 0x01, 0x02)
}()

func TestParseTokenKeys(t *testing.T) {
	std := base64.StdEncoding.EncodeToString(testKeyRaw)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key %q does not exercise the alphabets and padding", std)
	}
	other := store.NewTokenKey()
	want := mustKeys(t, std).ID()
	wantOther := mustKeys(t, other).ID()

	accepted := []struct {
		name   string
		in     string
		wantID string // the sealing key's id
	}{
		{"base64 standard padded", std, want},
		{"base64 standard raw", base64.RawStdEncoding.EncodeToString(testKeyRaw), want},
		{"base64 url padded", base64.URLEncoding.EncodeToString(testKeyRaw), want},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(testKeyRaw), want},
		{"hex lower", hex.EncodeToString(testKeyRaw), want},
		{"hex upper", strings.ToUpper(hex.EncodeToString(testKeyRaw)), want},
		{"surrounding space", "  " + std + "\t", want},
		{"two keys, first seals", std + "," + other, want},
		{"two keys, other first", other + " , " + std, wantOther},
		{"empty entries are skipped", "," + std + ",,", want},
		{"NewTokenKey output", other, wantOther},
	}
	for _, tc := range accepted {
		t.Run("accepts/"+tc.name, func(t *testing.T) {
			k, err := store.ParseTokenKeys(tc.in)
			if err != nil {
				t.Fatalf("ParseTokenKeys(%q): %v", tc.in, err)
			}
			if k.ID() != tc.wantID {
				t.Errorf("ID() = %s, want %s", k.ID(), tc.wantID)
			}
			if strings.Contains(strings.ToLower(hex.EncodeToString(testKeyRaw)), k.ID()) {
				t.Errorf("ID %s is part of the key itself", k.ID())
			}
		})
	}

	short := base64.StdEncoding.EncodeToString(testKeyRaw[:16])
	long := base64.StdEncoding.EncodeToString(append(append([]byte{}, testKeyRaw...), testKeyRaw[:16]...))
	hex62 := hex.EncodeToString(testKeyRaw)[:62]
	refused := []struct {
		name    string
		in      string
		secrets []string // text that must not appear in the error
		wantMsg string
	}{
		{"empty", "", nil, "no key given"},
		{"only separators and space", " , ,", nil, "no key given"},
		{"16 bytes of base64", short, []string{short}, "got 16"},
		{"48 bytes of base64", long, []string{long}, "got 48"},
		{"62 hex digits", hex62, []string{hex62}, "key 1"},
		{"64 characters that are neither hex nor base64", strings.Repeat("!", 64), []string{strings.Repeat("!", 64)}, "key 1"},
		{"hex with a non-hex digit", "g" + hex.EncodeToString(testKeyRaw)[1:], []string{hex.EncodeToString(testKeyRaw)[1:]}, "key 1"},
		{"quoted key", `"` + std + `"`, []string{std[:20]}, "key 1"},
		{"good key then a bad one", std + "," + short, []string{std, short}, "key 2"},
	}
	for _, tc := range refused {
		t.Run("refuses/"+tc.name, func(t *testing.T) {
			k, err := store.ParseTokenKeys(tc.in)
			if err == nil {
				t.Fatalf("ParseTokenKeys(%q) = %v, want an error", tc.in, k)
			}
			if !errors.Is(err, store.ErrTokenKey) {
				t.Errorf("error %v is not ErrTokenKey", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q repeats the key %q", err, s)
				}
			}
		})
	}

	t.Run("NewTokenKey is random", func(t *testing.T) {
		a, b := store.NewTokenKey(), store.NewTokenKey()
		if a == b {
			t.Fatalf("two NewTokenKey calls returned %q", a)
		}
		raw, err := base64.StdEncoding.DecodeString(a)
		if err != nil || len(raw) != 32 {
			t.Fatalf("NewTokenKey %q: %d bytes, %v", a, len(raw), err)
		}
	})
}

func TestTokenSealedRoundTrip(t *testing.T) {
	ctx := context.Background()
	exp := time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		tok  store.Token
	}{
		{"JWT pair", store.Token{AccessToken: "eyJhbGciOiJSUzI1NiJ9.access-secret-1.sig", RefreshToken: "refresh-secret-1", ExpiresAt: exp}},
		{"empty refresh token", store.Token{AccessToken: "eyJ.access-only.sig", ExpiresAt: exp}},
		{"long access token", store.Token{AccessToken: "eyJ" + strings.Repeat("A1b2C3", 700), RefreshToken: "refresh-long", ExpiresAt: exp}},
		{"non-ASCII refresh token", store.Token{AccessToken: "eyJ.access-ascii.sig", RefreshToken: "rëfresh-Øster-☃", ExpiresAt: exp}},
		{"sub-second expiry", store.Token{AccessToken: "eyJ.access-subsecond.sig", RefreshToken: "refresh-subsecond", ExpiresAt: exp.Add(123456 * time.Microsecond)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, k := keyedDB(t)
			v, err := db.SaveToken(ctx, tc.tok, 0)
			if err != nil || v != 1 {
				t.Fatalf("SaveToken: %d, %v", v, err)
			}
			first := assertSealed(t, db, k.ID(), tc.tok.AccessToken, tc.tok.RefreshToken)

			got, err := db.LoadToken(ctx)
			if err != nil {
				t.Fatalf("LoadToken: %v", err)
			}
			if got.AccessToken != tc.tok.AccessToken || got.RefreshToken != tc.tok.RefreshToken ||
				!got.ExpiresAt.Equal(tc.tok.ExpiresAt) || got.Version != 1 || got.Status != store.TokenConnected ||
				got.StatusReason != "" {
				t.Errorf("loaded %+v, want %+v at version 1, connected", got, tc.tok)
			}

			// The nonce is random: the same pair saved again must not give
			// the same ciphertext, or equal tokens would be visible as such.
			if _, err := db.SaveToken(ctx, tc.tok, 1); err != nil {
				t.Fatal(err)
			}
			second := assertSealed(t, db, k.ID(), tc.tok.AccessToken, tc.tok.RefreshToken)
			if first.Access == second.Access || first.Refresh == second.Refresh {
				t.Errorf("saving the same pair twice gave the same ciphertext")
			}
		})
	}
}

func TestTokenKeyRefusals(t *testing.T) {
	ctx := context.Background()
	sealKey := store.NewTokenKey()
	otherKey := store.NewTokenKey()
	tok := store.Token{AccessToken: "eyJ.access-secret.sig", RefreshToken: "refresh-secret", ExpiresAt: clockStart.Add(time.Hour)}

	// swapColumns writes each ciphertext into the other's column. It reads
	// first and writes with parameters because MySQL evaluates
	// "SET a = b, b = a" left to right, which would not swap.
	swapColumns := func(t *testing.T, db *store.DB) {
		r := readRawToken(t, db)
		if _, err := db.SQL().Exec(`UPDATE cc_tokens SET access_token = ?, refresh_token = ? WHERE id = 1`, r.Refresh, r.Access); err != nil {
			t.Fatal(err)
		}
	}
	// flipByte damages the ciphertext of the access token by one character.
	flipByte := func(t *testing.T, db *store.DB) {
		r := readRawToken(t, db)
		b := []byte(r.Access)
		i := len(b) - 5
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := db.SQL().Exec(`UPDATE cc_tokens SET access_token = ? WHERE id = 1`, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	// relabel claims the pair was sealed by the other configured key.
	relabel := func(t *testing.T, db *store.DB) {
		if _, err := db.SQL().Exec(`UPDATE cc_tokens SET key_id = ? WHERE id = 1`, mustKeys(t, otherKey).ID()); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name     string
		tamper   func(*testing.T, *store.DB)
		loadKeys string // "" loads with no keys at all
		wantIDs  []string
		wantMsg  string
	}{
		{"different key", nil, otherKey, []string{mustKeys(t, sealKey).ID(), mustKeys(t, otherKey).ID()}, "does not hold"},
		{"no key configured", nil, "", nil, "HS2CC_TOKEN_KEY is not set"},
		{"columns swapped", swapColumns, sealKey, []string{mustKeys(t, sealKey).ID()}, "does not open"},
		{"ciphertext damaged", flipByte, sealKey, []string{mustKeys(t, sealKey).ID()}, "does not open"},
		{"key_id names another configured key", relabel, otherKey + "," + sealKey, []string{mustKeys(t, otherKey).ID()}, "does not open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.MySQL(t)
			db.SetTokenKeys(mustKeys(t, sealKey))
			if _, err := db.SaveToken(ctx, tok, 0); err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				tc.tamper(t, db)
			}
			if tc.loadKeys == "" {
				db.SetTokenKeys(nil)
			} else {
				db.SetTokenKeys(mustKeys(t, tc.loadKeys))
			}
			got, err := db.LoadToken(ctx)
			if !errors.Is(err, store.ErrTokenKey) {
				t.Fatalf("LoadToken = %+v, %v; want ErrTokenKey", got, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error %q does not say %q", msg, tc.wantMsg)
			}
			for _, id := range tc.wantIDs {
				if !strings.Contains(msg, id) {
					t.Errorf("error %q does not name key id %s", msg, id)
				}
			}
			for _, secret := range []string{sealKey, otherKey, tok.AccessToken, tok.RefreshToken} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q reveals %q", msg, secret)
				}
			}
			// TokenState needs no key and still describes the pair.
			st, err := db.TokenState(ctx)
			if err != nil || st.Version != 1 || st.Status != store.TokenConnected {
				t.Errorf("TokenState = %+v, %v", st, err)
			}
		})
	}

	t.Run("save without a key", func(t *testing.T) {
		db := storetest.MySQL(t)
		db.SetTokenKeys(nil)
		if _, err := db.SaveToken(ctx, tok, 0); !errors.Is(err, store.ErrTokenKey) {
			t.Fatalf("SaveToken without keys: %v, want ErrTokenKey", err)
		}
		if _, err := db.TokenState(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused save wrote a row: TokenState %v", err)
		}
	})
}

func TestTokenKeyRotation(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	oldKey, newKey := store.NewTokenKey(), store.NewTokenKey()
	oldID, newID := mustKeys(t, oldKey).ID(), mustKeys(t, newKey).ID()

	db.SetTokenKeys(mustKeys(t, oldKey))
	v1, err := db.SaveToken(ctx, store.Token{AccessToken: "eyJ.access-one.s", RefreshToken: "refresh-one", ExpiresAt: clockStart}, 0)
	if err != nil {
		t.Fatal(err)
	}
	assertSealed(t, db, oldID, "eyJ.access-one.s", "refresh-one")

	// Mid-rotation: the new key seals, the old one still opens.
	db.SetTokenKeys(mustKeys(t, newKey+","+oldKey))
	got, err := db.LoadToken(ctx)
	if err != nil || got.AccessToken != "eyJ.access-one.s" || got.RefreshToken != "refresh-one" {
		t.Fatalf("load under new,old: %+v, %v", got, err)
	}
	if st, err := db.TokenState(ctx); err != nil || st.KeyID != oldID {
		t.Fatalf("TokenState.KeyID before re-save: %+v, %v; want %s", st, err, oldID)
	}
	v2, err := db.SaveToken(ctx, store.Token{AccessToken: "eyJ.access-two.s", RefreshToken: "refresh-two", ExpiresAt: clockStart}, v1)
	if err != nil {
		t.Fatal(err)
	}
	assertSealed(t, db, newID, "eyJ.access-two.s", "refresh-two")
	if st, err := db.TokenState(ctx); err != nil || st.KeyID != newID || st.Version != v2 {
		t.Fatalf("TokenState after re-save: %+v, %v; want key %s version %d", st, err, newID, v2)
	}

	// Rotation done: the new key alone opens, the old key alone no longer
	// does, and its error names the key that is needed.
	db.SetTokenKeys(mustKeys(t, newKey))
	if got, err := db.LoadToken(ctx); err != nil || got.RefreshToken != "refresh-two" {
		t.Fatalf("load under new alone: %+v, %v", got, err)
	}
	db.SetTokenKeys(mustKeys(t, oldKey))
	if _, err := db.LoadToken(ctx); !errors.Is(err, store.ErrTokenKey) || !strings.Contains(err.Error(), newID) {
		t.Fatalf("load under old alone: %v; want ErrTokenKey naming %s", err, newID)
	}
}

// execMigrationFile runs one migration file statement by statement, as
// the store's migrator does, so that a test can build an older schema.
func execMigrationFile(t *testing.T, db *store.DB, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";\n") {
		if stmt = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(stmt), ";")); stmt == "" {
			continue
		}
		if _, err := db.SQL().Exec(stmt); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

// TestPlainTextTokenFromBeforeSealing builds the schema of migration 0001,
// stores a pair the way the code before 0002 did, migrates, and checks that
// the pair survives and is sealed on its first read.
func TestPlainTextTokenFromBeforeSealing(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	execMigrationFile(t, db, "migrations/0001_init.sql")
	if _, err := db.SQL().Exec(`CREATE TABLE schema_migrations (version INT NOT NULL, name VARCHAR(255) NOT NULL,
		applied_at DATETIME(6) NOT NULL, PRIMARY KEY (version)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', ?)`, clockStart); err != nil {
		t.Fatal(err)
	}
	const access, refresh = "eyJhbGciOiJSUzI1NiJ9.plain-access.sig", "plain-refresh-token"
	exp := clockStart.Add(2 * time.Hour)
	// This is the pre-0002 SaveToken's statement with prevVersion 0.
	if _, err := db.SQL().Exec(`INSERT INTO cc_tokens (id, access_token, refresh_token, expires_at, version, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)`, 1, access, refresh, exp, 7, clockStart); err != nil {
		t.Fatal(err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != 2 {
		t.Fatalf("Migrate on a 0001 schema: %v, %v", applied, err)
	}

	st, err := db.TokenState(ctx)
	if err != nil || st.KeyID != "" || st.Status != store.TokenConnected || st.Version != 7 || !st.ExpiresAt.Equal(exp) {
		t.Fatalf("TokenState of the migrated plain row: %+v, %v", st, err)
	}
	if _, err := db.LoadToken(ctx); !errors.Is(err, store.ErrTokenKey) {
		t.Fatalf("LoadToken without keys on a plain row: %v, want ErrTokenKey", err)
	}
	if r := readRawToken(t, db); r.Access != access {
		t.Fatalf("a refused load changed the plain row: %+v", r)
	}

	k := mustKeys(t, store.NewTokenKey())
	db.SetTokenKeys(k)
	for i := 0; i < 2; i++ {
		got, err := db.LoadToken(ctx)
		if err != nil {
			t.Fatalf("load %d: %v", i+1, err)
		}
		if got.AccessToken != access || got.RefreshToken != refresh || got.Version != 7 || !got.ExpiresAt.Equal(exp) ||
			got.Status != store.TokenConnected {
			t.Fatalf("load %d: %+v", i+1, got)
		}
		r := assertSealed(t, db, k.ID(), access, refresh)
		if r.Version != 7 {
			t.Errorf("sealing changed the version to %d", r.Version)
		}
	}
	// The row really is sealed now: another key cannot open it.
	db.SetTokenKeys(mustKeys(t, store.NewTokenKey()))
	if _, err := db.LoadToken(ctx); !errors.Is(err, store.ErrTokenKey) {
		t.Fatalf("load of the sealed row under another key: %v, want ErrTokenKey", err)
	}
}

func TestSaveTokenCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	db, _ := keyedDB(t)
	exp := clockStart.Add(time.Hour)
	save := func(name string, prev int64) (int64, error) {
		return db.SaveToken(ctx, store.Token{AccessToken: "a-" + name, RefreshToken: "r-" + name, ExpiresAt: exp}, prev)
	}
	steps := []struct {
		name    string
		prev    int64
		want    int64
		wantErr error
	}{
		{"first connection", 0, 1, nil},
		{"refresh of v1", 1, 2, nil},
		{"second refresh of v1 loses", 1, 0, store.ErrConflict},
		{"refresh of a future version loses", 5, 0, store.ErrConflict},
		{"refresh of v2", 2, 3, nil},
		{"reconnect replaces whatever is stored", 0, 4, nil},
	}
	last := ""
	for _, st := range steps {
		v, err := save(st.name, st.prev)
		if !errors.Is(err, st.wantErr) || v != st.want {
			t.Fatalf("%s: SaveToken = %d, %v; want %d, %v", st.name, v, err, st.want, st.wantErr)
		}
		if err == nil {
			last = st.name
		}
		got, err := db.LoadToken(ctx)
		if err != nil || got.RefreshToken != "r-"+last {
			t.Fatalf("%s: loaded %+v, %v; want the pair of %q", st.name, got, err, last)
		}
	}

	// Many refreshers of one version at once: exactly one wins.
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = save(fmt.Sprint("racer-", i), 4)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent refreshes of one version succeeded, want 1", won)
	}
}

func TestNeedsReconnect(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		markOffset int64 // marked version relative to the stored one
		reason     string
		wantMarked bool
		wantReason string
	}{
		{"current version is marked", 0, "invalid_grant: refresh token revoked", true, "invalid_grant: refresh token revoked"},
		{"older version is left alone", -1, "stale refusal", false, ""},
		{"newer version is left alone", +1, "future refusal", false, ""},
		{"long reason is cut to 255 bytes", 0, strings.Repeat("x", 300), true, strings.Repeat("x", 255)},
		// A cut inside a multi-byte character would be invalid UTF-8, which
		// MySQL in strict mode refuses; the cut must fall on a rune boundary.
		{"long reason is cut on a rune boundary", 0, strings.Repeat("x", 254) + "éé", true, strings.Repeat("x", 254)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := keyedDB(t)
			clock := newClock(clockStart)
			db.SetClock(clock.Now)
			tok := store.Token{AccessToken: "eyJ.a.s", RefreshToken: "r", ExpiresAt: clockStart.Add(time.Hour)}
			v1, err := db.SaveToken(ctx, tok, 0)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := db.SaveToken(ctx, tok, v1)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := db.ClaimRefresh(ctx, v2, "refresher", time.Minute); err != nil || !ok {
				t.Fatalf("claim: %v, %v", ok, err)
			}
			clock.Advance(time.Minute / 2)
			if err := db.MarkNeedsReconnect(ctx, v2+tc.markOffset, tc.reason); err != nil {
				t.Fatalf("MarkNeedsReconnect: %v", err)
			}
			st, err := db.TokenState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.LoadToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantMarked {
				if st.Status != store.TokenNeedsReconnect || st.StatusReason != tc.wantReason || !st.StatusAt.Equal(clock.Now()) ||
					!st.RefreshUntil.IsZero() {
					t.Errorf("marked state %+v; want needs_reconnect %q at %v, claim ended", st, tc.wantReason, clock.Now())
				}
				if got.Status != store.TokenNeedsReconnect || got.StatusReason != tc.wantReason {
					t.Errorf("LoadToken status %q %q", got.Status, got.StatusReason)
				}
				if r := readRawToken(t, db); r.Owner != "" {
					t.Errorf("refresh_owner %q survived the mark", r.Owner)
				}
			} else {
				if st.Status != store.TokenConnected || st.StatusReason != "" || !st.StatusAt.Equal(clockStart) || st.RefreshUntil.IsZero() {
					t.Errorf("state after marking another version %+v; want untouched", st)
				}
			}
			if st.Version != v2 || got.RefreshToken != "r" {
				t.Errorf("the mark changed the pair: %+v / %+v", st, got)
			}

			// A fresh connection (prevVersion 0) clears the mark.
			clock.Advance(time.Minute)
			v3, err := db.SaveToken(ctx, store.Token{AccessToken: "eyJ.new.s", RefreshToken: "r-new", ExpiresAt: clockStart}, 0)
			if err != nil {
				t.Fatal(err)
			}
			st, err = db.TokenState(ctx)
			if err != nil || st.Status != store.TokenConnected || st.StatusReason != "" || st.Version != v3 ||
				!st.StatusAt.Equal(clock.Now()) || !st.ConnectedAt.Equal(clock.Now()) || !st.RefreshedAt.IsZero() {
				t.Errorf("state after reconnecting %+v, %v", st, err)
			}
		})
	}
}

func TestTokenState(t *testing.T) {
	ctx := context.Background()
	db, k := keyedDB(t)
	clock := newClock(clockStart)
	db.SetClock(clock.Now)
	if _, err := db.TokenState(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TokenState before connecting: %v, want ErrNotFound", err)
	}
	exp1, exp2 := clockStart.Add(2*time.Hour), clockStart.Add(4*time.Hour)
	tok := func(exp time.Time) store.Token {
		return store.Token{AccessToken: "eyJ.a.s", RefreshToken: "r", ExpiresAt: exp}
	}

	// Each step acts at its moment and then the state is read with no key
	// at all, as readiness and `hs2cc status` do.
	type want struct {
		status, reason                 string
		statusAt, connected, refreshed time.Time
		expires, refreshUntil          time.Time
		version                        int64
	}
	t0, t1, t2, t3 := clockStart, clockStart.Add(time.Minute), clockStart.Add(2*time.Minute), clockStart.Add(3*time.Minute)
	steps := []struct {
		name string
		at   time.Time
		act  func() error
		want want
	}{
		{"connect", t0, func() error { _, err := db.SaveToken(ctx, tok(exp1), 0); return err },
			want{store.TokenConnected, "", t0, t0, time.Time{}, exp1, time.Time{}, 1}},
		{"claim a refresh", t1, func() error {
			ok, err := db.ClaimRefresh(ctx, 1, "w1", 30*time.Second)
			if err == nil && !ok {
				err = errors.New("claim refused")
			}
			return err
		}, want{store.TokenConnected, "", t0, t0, time.Time{}, exp1, t1.Add(30 * time.Second), 1}},
		{"save the refreshed pair", t2, func() error { _, err := db.SaveToken(ctx, tok(exp2), 1); return err },
			want{store.TokenConnected, "", t0, t0, t2, exp2, time.Time{}, 2}},
		{"refused by CC", t3, func() error { return db.MarkNeedsReconnect(ctx, 2, "invalid_grant") },
			want{store.TokenNeedsReconnect, "invalid_grant", t3, t0, t2, exp2, time.Time{}, 2}},
	}
	for _, st := range steps {
		clock.Set(st.at)
		db.SetTokenKeys(k)
		if err := st.act(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		db.SetTokenKeys(nil)
		got, err := db.TokenState(ctx)
		if err != nil {
			t.Fatalf("%s: TokenState: %v", st.name, err)
		}
		w := st.want
		if got.Status != w.status || got.StatusReason != w.reason || !got.StatusAt.Equal(w.statusAt) ||
			!got.ConnectedAt.Equal(w.connected) || !got.RefreshedAt.Equal(w.refreshed) || !got.ExpiresAt.Equal(w.expires) ||
			!got.RefreshUntil.Equal(w.refreshUntil) || got.Version != w.version || got.KeyID != k.ID() {
			t.Errorf("%s: state %+v\nwant %+v (key %s)", st.name, got, w, k.ID())
		}
	}
}

func TestClaimRefresh(t *testing.T) {
	ctx := context.Background()
	db, _ := keyedDB(t)
	clock := newClock(clockStart)
	db.SetClock(clock.Now)
	const ttl = 30 * time.Second

	if ok, err := db.ClaimRefresh(ctx, 1, "a", ttl); err != nil || ok {
		t.Fatalf("claim before any token: %v, %v; want false", ok, err)
	}
	if _, err := db.SaveToken(ctx, store.Token{AccessToken: "eyJ.a.s", RefreshToken: "r", ExpiresAt: clockStart}, 0); err != nil {
		t.Fatal(err)
	}

	claim := func(owner string, version int64) func() (bool, error) {
		return func() (bool, error) { return db.ClaimRefresh(ctx, version, owner, ttl) }
	}
	release := func(owner string) func() (bool, error) {
		return func() (bool, error) { return true, db.ReleaseRefresh(ctx, owner) }
	}
	save := func(prev int64) func() (bool, error) {
		return func() (bool, error) {
			_, err := db.SaveToken(ctx, store.Token{AccessToken: "eyJ.b.s", RefreshToken: "r2", ExpiresAt: clockStart}, prev)
			return err == nil, err
		}
	}
	steps := []struct {
		name      string
		advance   time.Duration // the clock moves this much first
		act       func() (bool, error)
		want      bool
		wantOwner string // refresh_owner afterwards
	}{
		{"a claims v1", 0, claim("a", 1), true, "a"},
		{"b cannot claim while a holds it", time.Second, claim("b", 1), false, "a"},
		{"a cannot claim again either: owners are per attempt", 0, claim("a", 1), false, "a"},
		{"a claim for a stale version fails", time.Second, claim("c", 0), false, "a"},
		{"a claim for a future version fails", 0, claim("c", 2), false, "a"},
		{"b still cannot claim just before expiry", ttl - 3*time.Second, claim("b", 1), false, "a"},
		{"b takes over an expired claim", 2 * time.Second, claim("b", 1), true, "b"},
		{"a's release leaves b's claim", 0, release("a"), true, "b"},
		{"so c cannot claim", time.Second, claim("c", 1), false, "b"},
		{"b releases", 0, release("b"), true, ""},
		{"c claims the released v1", time.Second, claim("c", 1), true, "c"},
		{"c saves v2, which ends the claim", time.Second, save(1), true, ""},
		{"v1 cannot be claimed any more", 0, claim("a", 1), false, ""},
		{"d claims v2 at once", 0, claim("d", 2), true, "d"},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		got, err := st.act()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
		}
		if r := readRawToken(t, db); r.Owner != st.wantOwner {
			t.Fatalf("%s: refresh_owner %q, want %q", st.name, r.Owner, st.wantOwner)
		}
	}

	// Many processes racing for the same version: exactly one wins.
	if err := db.ReleaseRefresh(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	wins := make([]bool, n)
	errs := make([]error, n)
	for i := range wins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wins[i], errs[i] = db.ClaimRefresh(ctx, 2, fmt.Sprint("racer-", i), ttl)
		}()
	}
	wg.Wait()
	won := 0
	for i := range wins {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if wins[i] {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent claims of one version succeeded, want 1", won)
	}
}

// TestOAuthState: a state is taken once, and only with the binding it was
// saved with; a wrong or missing binding is refused without spending it,
// so the browser that started the connection can still finish.
func TestOAuthState(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	c := store.NewRedis(rdb)
	const binding = "digest-of-the-starting-browser"

	cases := []struct {
		name, state, verifier string
		// wrong are bindings presented before the right one, each refused.
		wrong []string
	}{
		{name: "plain", state: "st-1", verifier: "verifier-1"},
		{name: "url-safe random state", state: "b64_-state~.x", verifier: strings.Repeat("v", 128)},
		{name: "another browser first", state: "st-2", verifier: "verifier-2",
			wrong: []string{"digest-of-another-browser", "", binding + "x", binding[:10]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.SaveOAuthState(ctx, tc.state, binding, tc.verifier, time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, err := c.TakeOAuthState(ctx, "other-"+tc.state, binding); !errors.Is(err, store.ErrNotFound) || v != "" {
				t.Fatalf("unknown state: %q, %v; want ErrNotFound", v, err)
			}
			for _, w := range tc.wrong {
				if v, err := c.TakeOAuthState(ctx, tc.state, w); !errors.Is(err, store.ErrOAuthBinding) || v != "" {
					t.Fatalf("binding %q: %q, %v; want ErrOAuthBinding", w, v, err)
				}
			}
			if v, err := c.TakeOAuthState(ctx, tc.state, binding); err != nil || v != tc.verifier {
				t.Fatalf("first take: %q, %v", v, err)
			}
			if v, err := c.TakeOAuthState(ctx, tc.state, binding); !errors.Is(err, store.ErrNotFound) || v != "" {
				t.Fatalf("second take: %q, %v; want ErrNotFound", v, err)
			}
		})
	}

	t.Run("an empty binding is not saved", func(t *testing.T) {
		if err := c.SaveOAuthState(ctx, "unbound", "", "v", time.Minute); err == nil {
			t.Fatal("SaveOAuthState with no binding succeeded")
		}
		if n := rdb.Exists(ctx, "hs2cc:oauth:state:unbound").Val(); n != 0 {
			t.Fatalf("an unbound state was kept")
		}
	})

	t.Run("kept for its ttl only", func(t *testing.T) {
		if err := c.SaveOAuthState(ctx, "ttl-long", binding, "v", 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		keys, err := rdb.Keys(ctx, "*ttl-long*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys for the state: %v, %v", keys, err)
		}
		if pttl, err := rdb.PTTL(ctx, keys[0]).Result(); err != nil || pttl <= 9*time.Minute || pttl > 10*time.Minute {
			t.Fatalf("PTTL %v, %v; want about 10m", pttl, err)
		}
		if err := c.SaveOAuthState(ctx, "ttl-short", binding, "v", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		if v, err := c.TakeOAuthState(ctx, "ttl-short", binding); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired state: %q, %v; want ErrNotFound", v, err)
		}
	})

	t.Run("one of many concurrent takes wins", func(t *testing.T) {
		if err := c.SaveOAuthState(ctx, "race", binding, "the-verifier", time.Minute); err != nil {
			t.Fatal(err)
		}
		const n = 16
		var wg sync.WaitGroup
		got := make([]string, n)
		errs := make([]error, n)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = c.TakeOAuthState(ctx, "race", binding)
			}()
		}
		wg.Wait()
		won := 0
		for i := range got {
			switch {
			case errs[i] == nil && got[i] == "the-verifier":
				won++
			case !errors.Is(errs[i], store.ErrNotFound):
				t.Fatalf("take %d: %q, %v", i, got[i], errs[i])
			}
		}
		if won != 1 {
			t.Fatalf("%d takes got the verifier, want 1", won)
		}
	})
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	c := store.NewRedis(rdb)
	const ttl = 10 * time.Second

	// leaseKey finds the one Redis key that holds the named lease, without
	// the test depending on the store's key layout.
	leaseKey := func(name string) string {
		t.Helper()
		keys, err := rdb.Keys(ctx, "*"+name).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys for lease %s: %v, %v", name, keys, err)
		}
		return keys[0]
	}
	acquire := func(name string, ttl time.Duration) *store.Lease {
		t.Helper()
		l, err := c.Acquire(ctx, name, ttl)
		if err != nil {
			t.Fatalf("Acquire %s: %v", name, err)
		}
		return l
	}
	renew := func(l *store.Lease) bool {
		t.Helper()
		ok, err := l.Renew(ctx)
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		return ok
	}

	t.Run("held, renewed, released", func(t *testing.T) {
		a := acquire("sched", ttl)
		if a == nil {
			t.Fatal("first Acquire returned nil")
		}
		if b := acquire("sched", ttl); b != nil {
			t.Fatal("second Acquire succeeded while the lease is held")
		}
		if other := acquire("other", ttl); other == nil {
			t.Fatal("a lease of another name was refused")
		}
		key := leaseKey("sched")
		// Shorten the lease by hand; Renew must give it its full ttl back.
		if err := rdb.PExpire(ctx, key, 100*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		if !renew(a) {
			t.Fatal("Renew by the holder returned false")
		}
		if pttl := rdb.PTTL(ctx, key).Val(); pttl <= ttl-time.Second || pttl > ttl {
			t.Fatalf("PTTL after Renew %v, want about %v", pttl, ttl)
		}
		a.Release()
		if n := rdb.Exists(ctx, key).Val(); n != 0 {
			t.Fatal("Release left the key")
		}
		if renew(a) {
			t.Fatal("Renew after Release returned true")
		}
		if n := rdb.Exists(ctx, key).Val(); n != 0 {
			t.Fatal("Renew after Release brought the key back")
		}
	})

	t.Run("deleted then taken over", func(t *testing.T) {
		a := acquire("takeover", ttl)
		if a == nil {
			t.Fatal("Acquire returned nil")
		}
		key := leaseKey("takeover")
		if err := rdb.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		if renew(a) {
			t.Fatal("Renew of a deleted lease returned true")
		}
		b := acquire("takeover", ttl)
		if b == nil {
			t.Fatal("Acquire after the delete returned nil")
		}
		if renew(a) {
			t.Fatal("Renew by the old holder of a taken-over lease returned true")
		}
		a.Release()
		if acquire("takeover", ttl) != nil {
			t.Fatal("the old holder's Release freed the new holder's lease")
		}
		if !renew(b) {
			t.Fatal("Renew by the new holder returned false")
		}
		b.Release()
		if c := acquire("takeover", ttl); c == nil {
			t.Fatal("Acquire after the holder's Release returned nil")
		}
	})

	t.Run("expires without renewal", func(t *testing.T) {
		a := acquire("short", 50*time.Millisecond)
		if a == nil {
			t.Fatal("Acquire returned nil")
		}
		time.Sleep(150 * time.Millisecond)
		if renew(a) {
			t.Fatal("Renew of an expired lease returned true")
		}
		b := acquire("short", ttl)
		if b == nil {
			t.Fatal("Acquire after expiry returned nil")
		}
		if renew(a) {
			t.Fatal("Renew by the expired holder returned true")
		}
	})

	t.Run("one of many concurrent acquires wins", func(t *testing.T) {
		const n = 16
		var wg sync.WaitGroup
		got := make([]*store.Lease, n)
		errs := make([]error, n)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = c.Acquire(ctx, "race", ttl)
			}()
		}
		wg.Wait()
		won := 0
		for i := range got {
			if errs[i] != nil {
				t.Fatalf("acquire %d: %v", i, errs[i])
			}
			if got[i] != nil {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d acquires succeeded, want 1", won)
		}
	})
}

func TestStaleImports(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	clock := newClock(clockStart)
	db.SetClock(clock.Now)
	ids := ingestN(t, db, 8)

	// Each import gets its own contact and is taken to its state two hours
	// ago, except where touched says it moved again a minute ago.
	type imp struct {
		name    string
		states  []string // "" claims only; "rejected" fails; others are activity states
		touched bool
		stale   bool
	}
	imps := []imp{
		{"claimed", nil, false, true},
		{"initialized", []string{"initialized"}, false, true},
		{"processing", []string{"initialized", "processing"}, false, true},
		{"completed", []string{"initialized", "completed"}, false, false},
		{"failed", []string{"initialized", "failed"}, false, false},
		{"rejected by CC", []string{"rejected"}, false, false},
		{"processing, polled recently", []string{"initialized", "processing"}, true, false},
		{"claimed recently", nil, true, false},
	}
	var wantStale []int64
	importIDs := map[int64]string{}
	for i, im := range imps {
		clock.Set(clockStart)
		if im.touched && len(im.states) == 0 {
			clock.Advance(2*time.Hour - time.Minute)
		}
		claimed, err := db.ClaimImport(ctx, "task-"+fmt.Sprint(i), "", []int64{ids[i]})
		if err != nil || claimed == nil {
			t.Fatalf("%s: claim: %+v, %v", im.name, claimed, err)
		}
		importIDs[claimed.ID] = im.name
		for j, s := range im.states {
			if im.touched && j == len(im.states)-1 {
				clock.Advance(2*time.Hour - time.Minute)
			}
			final := s != "initialized" && s != "processing"
			switch {
			case s == "rejected":
				err = db.FailImport(ctx, claimed.ID, "CC refused the request")
			case j == 0:
				err = db.SubmitImport(ctx, claimed.ID, []string{"New Agents"}, []string{"l-1"}, "act-"+fmt.Sprint(i), s)
			default:
				err = db.RecordActivity(ctx, claimed.ID, store.ActivityResult{State: s, Final: final}, s == "completed", "x")
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", im.name, s, err)
			}
		}
		if im.stale {
			wantStale = append(wantStale, claimed.ID)
		}
	}
	now := clockStart.Add(2 * time.Hour)

	cases := []struct {
		name   string
		before time.Time
		limit  int
		want   []int64
	}{
		{"older than an hour", now.Add(-time.Hour), 100, wantStale},
		{"limit keeps the oldest ids", now.Add(-time.Hour), 2, wantStale[:2]},
		{"nothing is older than three hours", now.Add(-3 * time.Hour), 100, nil},
		{"a cutoff at the very instant excludes it", clockStart, 100, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.StaleImports(ctx, tc.before, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []int64
			var names []string
			for _, g := range got {
				gotIDs = append(gotIDs, g.ID)
				names = append(names, importIDs[g.ID])
			}
			if fmt.Sprint(gotIDs) != fmt.Sprint(tc.want) {
				t.Fatalf("stale imports %v %q, want %v", gotIDs, names, tc.want)
			}
		})
	}

	// The returned imports carry what a resumer needs.
	got, err := db.StaleImports(ctx, now.Add(-time.Hour), 100)
	if err != nil || len(got) != 3 {
		t.Fatalf("stale imports: %d, %v", len(got), err)
	}
	if got[0].TaskID != "task-0" || got[0].ActivityID != "" || got[0].State != store.ImportClaimed {
		t.Errorf("claimed import %+v", got[0])
	}
	if got[2].ActivityID != "act-2" || got[2].State != "processing" {
		t.Errorf("processing import %+v", got[2])
	}
}

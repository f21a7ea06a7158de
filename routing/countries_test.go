package routing

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCountryTable(t *testing.T) {
	// 249 officially assigned ISO 3166-1 alpha-2 codes, plus XK (Kosovo).
	if got := len(countries); got != 250 {
		t.Errorf("len(countries) = %d, want 249 ISO codes + XK", got)
	}
	names := map[string]string{}
	for code, name := range countries {
		if len(code) != 2 || code != strings.ToUpper(code) {
			t.Errorf("code %q is not two upper-case letters", code)
		}
		if n := utf8.RuneCountInString(name); n > maxText {
			t.Errorf("%s: name %q is %d characters, over CC's %d", code, name, n, maxText)
		}
		if name != strings.TrimSpace(name) || name == "" {
			t.Errorf("%s: name %q is blank or padded", code, name)
		}
		if prev, ok := names[name]; ok {
			t.Errorf("name %q used by %s and %s", name, prev, code)
		}
		names[name] = code
		// Every name converts to itself and its code to it.
		if got := CountryName(name); got != name {
			t.Errorf("CountryName(%q) = %q", name, got)
		}
		if got := CountryName(strings.ToLower(code)); got != name {
			t.Errorf("CountryName(%q) = %q, want %q", strings.ToLower(code), got, name)
		}
	}
	for alias, code := range countryAliases {
		if got, want := CountryName(alias), countries[code]; got != want {
			t.Errorf("CountryName(%q) = %q, want %q", alias, got, want)
		}
	}
}

func TestCountryName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"US", "United States"},
		{"us", "United States"},
		{" Us ", "United States"},
		{"USA", "United States"},
		{"usa", "United States"},
		{"U.S.", "United States"},
		{"u.s.a.", "United States"},
		{"United States", "United States"},
		{"united states", "United States"},
		{"UNITED STATES OF AMERICA", "United States"},
		{"GB", "United Kingdom"},
		{"UK", "United Kingdom"},
		{"U.K.", "United Kingdom"},
		{"Great Britain", "United Kingdom"},
		{"DE", "Germany"},
		{"Deutschland", "Germany"},
		{"germany", "Germany"},
		{"CA", "Canada"},
		{"RU", "Russia"},
		{"Russian Federation", "Russia"},
		{"KR", "South Korea"},
		{"Korea, Republic of", "South Korea"},
		{"CI", "Côte d'Ivoire"},
		{"Côte d'Ivoire", "Côte d'Ivoire"},
		{"Cote d'Ivoire", "Côte d'Ivoire"},
		{"Côte d’Ivoire", "Côte d'Ivoire"},
		{"Ivory Coast", "Côte d'Ivoire"},
		{"curacao", "Curaçao"},
		{"Åland Islands", "Åland Islands"},
		{"The Netherlands", "Netherlands"},
		{"Holland", "Netherlands"},
		{"the bahamas", "Bahamas"},
		{"St. Kitts & Nevis", "Saint Kitts and Nevis"},
		{"Trinidad & Tobago", "Trinidad and Tobago"},
		{"Bosnia-Herzegovina", "Bosnia and Herzegovina"},
		{"Herzegovina", "Herzegovina"}, // not a known spelling: passes through
		{"guinea bissau", "Guinea-Bissau"},
		{"Czech Republic", "Czechia"},
		{"Türkiye", "Turkey"},
		{"Viet Nam", "Vietnam"},
		{"XK", "Kosovo"},
		{"Atlantis", "Atlantis"},
		{"  Atlantis  ", "Atlantis"},
		{"ZZ", "ZZ"},
		{"Ünknown Länd", "Ünknown Länd"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := CountryName(tt.in); got != tt.want {
			t.Errorf("CountryName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStateName(t *testing.T) {
	if len(usStates) != 56 || len(caProvinces) != 13 {
		t.Errorf("tables hold %d US and %d Canadian entries, want 56 and 13", len(usStates), len(caProvinces))
	}
	tests := []struct{ state, country, want string }{
		{"CA", "United States", "California"},
		{"ca", "United States", "California"},
		{"dc", "United States", "District of Columbia"},
		{"california", "United States", "California"},
		{"ON", "Canada", "Ontario"},
		{"quebec", "Canada", "Quebec"},
		{"ON", "United States", "ON"},
		{"CA", "Germany", "CA"},
		{"CA", "", "CA"},
		{"Bavaria", "Germany", "Bavaria"},
	}
	for _, tt := range tests {
		if got := stateName(tt.state, tt.country); got != tt.want {
			t.Errorf("stateName(%q, %q) = %q, want %q", tt.state, tt.country, got, tt.want)
		}
	}
}

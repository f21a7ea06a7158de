package routing

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// CC's maxLength for the contacts_json_import keys this package sends.
const (
	maxText        = 50  // email, names, job, company, phones, city, state, zip, country
	maxStreet      = 255 // street, street2
	maxCustomValue = 255 // every cf: value
)

// fieldID names a standard ImportContact field. The order is the order of
// CC's JSON keys, so that a contact with several bad values is always
// rejected for the same one.
type fieldID uint8

const (
	fFirstName fieldID = iota
	fLastName
	fJobTitle
	fCompanyName
	fBirthdayMonth
	fBirthdayDay
	fAnniversary
	fPhone
	fHomePhone
	fWorkPhone
	fMobilePhone
	fStreet
	fStreet2
	fCity
	fState
	fZip
	fCountry
	numStandard
	fCustom = numStandard // a cf: field; mapping.cf holds its name
)

// fieldSpec is a standard CC key and its maxLength.
type fieldSpec struct {
	name string
	max  int
}

// standardFields are the CC keys that ImportContact can carry, with their
// length limits (0 for the date fields, which are parsed instead). Email is
// not among them: it identifies the contact, so it is always e.Email.
var standardFields = [numStandard]fieldSpec{
	fFirstName:     {"first_name", maxText},
	fLastName:      {"last_name", maxText},
	fJobTitle:      {"job_title", maxText},
	fCompanyName:   {"company_name", maxText},
	fBirthdayMonth: {"birthday_month", 0},
	fBirthdayDay:   {"birthday_day", 0},
	fAnniversary:   {"anniversary", 0},
	fPhone:         {"phone", maxText},
	fHomePhone:     {"home_phone", maxText},
	fWorkPhone:     {"work_phone", maxText},
	fMobilePhone:   {"mobile_phone", maxText},
	fStreet:        {"street", maxStreet},
	fStreet2:       {"street2", maxStreet},
	fCity:          {"city", maxText},
	fState:         {"state", maxText},
	fZip:           {"zip", maxText},
	fCountry:       {"country", maxText},
}

// defaultFieldMap is the mapping used when a rules file has no fields
// section, and by Default. Mapping a property HubSpot does not send is
// harmless: the field stays empty and is left out of the import.
func defaultFieldMap() map[string]string {
	return map[string]string{
		// Names and country come from what hs2cc parsed, so that the
		// HS2CC_FIELD_* settings keep deciding which properties hold them.
		"first_name":   "@first_name",
		"last_name":    "@last_name",
		"country":      "@country",
		"job_title":    "jobtitle",
		"company_name": "company",
		"phone":        "phone",
		"mobile_phone": "mobilephone",
		"street":       "address",
		"city":         "city",
		"state":        "state",
		"zip":          "zip",
		// No custom fields by default: they only land when the field
		// exists in CC, which a rules file states on purpose.
	}
}

// sourceKind says where a mapped value comes from: a HubSpot property, or
// one of the enrollment's own fields named with a leading '@'.
type sourceKind uint8

const (
	srcNone sourceKind = iota // no source: the zero fallback
	srcProperty
	srcEnrolledAt
	srcEmail
	srcFirstName
	srcLastName
	srcCountry
)

// specialSources are the '@' names a mapping may use instead of a
// property. @first_name, @last_name and @country are the values hs2cc
// parsed from the webhook (which honour its configured property names).
var specialSources = map[string]sourceKind{
	"@enrolled_at": srcEnrolledAt,
	"@email":       srcEmail,
	"@first_name":  srcFirstName,
	"@last_name":   srcLastName,
	"@country":     srcCountry,
}

var customFieldName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// mapping is one compiled entry of fields: CC field ← source.
type mapping struct {
	field    fieldID
	cf       string // custom field name without "cf:", for fCustom
	kind     sourceKind
	property string // for srcProperty
	source   string // as written, for reasons
	// fallback is the enrollment field used when the source is blank; the
	// names and the country always have a value if hs2cc parsed one.
	fallback sourceKind
}

// key is the CC JSON key of m, for reasons.
func (m *mapping) key() string {
	if m.field == fCustom {
		return "cf:" + m.cf
	}
	return standardFields[m.field].name
}

// value returns m's trimmed value for e and whether it came from the
// fallback rather than the configured source.
func (m *mapping) value(e *store.Enrollment) (string, bool) {
	v := sourceValue(e, m.kind, m.property)
	if v == "" && m.fallback != srcNone && m.fallback != m.kind {
		return sourceValue(e, m.fallback, ""), true
	}
	return v, false
}

func sourceValue(e *store.Enrollment, kind sourceKind, property string) string {
	switch kind {
	case srcProperty:
		return strings.TrimSpace(e.Properties[property])
	case srcEnrolledAt:
		if e.EnrolledAt.IsZero() {
			return ""
		}
		return e.EnrolledAt.UTC().Format("2006-01-02")
	case srcEmail:
		return strings.TrimSpace(e.Email)
	case srcFirstName:
		return strings.TrimSpace(e.FirstName)
	case srcLastName:
		return strings.TrimSpace(e.LastName)
	case srcCountry:
		return strings.TrimSpace(e.Country)
	}
	return ""
}

// origin describes where a rejected value came from, so that the reason
// points the operator at the HubSpot property to fix.
func (m *mapping) origin(fellBack bool) string {
	switch {
	case fellBack:
		return fmt.Sprintf("from the enrollment's %s", strings.TrimPrefix(specialName(m.fallback), "@"))
	case m.kind == srcProperty:
		return fmt.Sprintf("from HubSpot property %q", m.property)
	case m.kind != srcEnrolledAt:
		return fmt.Sprintf("from the enrollment's %s", strings.TrimPrefix(m.source, "@"))
	}
	return "from " + m.source
}

func specialName(k sourceKind) string {
	for name, kind := range specialSources {
		if kind == k {
			return name
		}
	}
	return ""
}

// setFields compiles fields into r. lines gives each key's line and
// fieldsLine the line of the section, for problems; p may be nil only for
// the built-in defaults, which are valid.
func (r *Rules) setFields(fields map[string]string, lines map[string]int, fieldsLine int, p *problems) {
	if p == nil {
		p = new(problems)
		defer func() {
			if len(p.list) > 0 {
				panic("routing: invalid built-in field mapping: " + strings.Join(p.list, "; "))
			}
		}()
	}
	// Keys are compiled in name order so that problems are always listed
	// in the same order.
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var mapped [numStandard]bool
	customs := 0
	ms := make([]mapping, 0, len(fields)+3)
	for _, k := range keys {
		line, path := lines[k], "fields."+k
		m, ok := fieldMapping(k, line, path, p)
		if !ok {
			continue
		}
		// A valid key counts as mapped even when its source is not, so
		// that a bad birthday_month source is not reported a second time
		// as birthday_month missing.
		if m.field == fCustom {
			customs++
		} else {
			mapped[m.field] = true
		}
		if m.setSource(fields[k], line, path, p) {
			ms = append(ms, m)
		}
	}
	if customs > MaxCustomFields {
		p.add(fieldsLine, "fields", "%d custom fields (cf:) are mapped; Constant Contact accepts at most %d per contact", customs, MaxCustomFields)
	}
	if mapped[fBirthdayMonth] != mapped[fBirthdayDay] {
		p.add(fieldsLine, "fields", "birthday_month and birthday_day must be mapped together; Constant Contact ignores one without the other")
	}
	r.install(withEnrollmentFields(ms, mapped))
}

// fieldMapping starts the mapping of the CC key k, with its field set, or
// adds a problem and returns false when k is not a key ImportContact can
// carry.
func fieldMapping(k string, line int, path string, p *problems) (mapping, bool) {
	name, isCustom := strings.CutPrefix(k, "cf:")
	switch {
	case k == "email":
		p.add(line, path, "email cannot be mapped: it identifies the contact in Constant Contact, so it is always the enrollment's email")
		return mapping{}, false
	case isCustom:
		if !customFieldName.MatchString(name) {
			p.add(line, path, "custom field name %q must be letters, digits and underscores (the field's name in Constant Contact, not its label)", name)
			return mapping{}, false
		}
		return mapping{field: fCustom, cf: name}, true
	}
	id := slices.IndexFunc(standardFields[:], func(f fieldSpec) bool { return f.name == k })
	if id < 0 {
		p.add(line, path, "unknown Constant Contact field %q; valid fields are %s and cf:<custom field name>", k, standardNames())
		return mapping{}, false
	}
	return mapping{field: fieldID(id)}, true
}

// setSource sets where m's value comes from, as written in the rules file,
// or adds a problem and returns false when source names nothing.
func (m *mapping) setSource(source string, line int, path string, p *problems) bool {
	src := strings.TrimSpace(source)
	m.source = src
	switch {
	case src == "":
		p.add(line, path, "no source; give a HubSpot property name or one of %s", specialList())
		return false
	case strings.HasPrefix(src, "@"):
		kind, ok := specialSources[src]
		if !ok {
			p.add(line, path, "unknown source %q; sources starting with @ are %s", src, specialList())
			return false
		}
		m.kind = kind
	default:
		m.kind, m.property = srcProperty, src
	}
	return true
}

// withEnrollmentFields adds to ms the enrollment's own names and country
// where mapped says they are not mapped, and makes them the fallback of the
// mappings of those fields. They are what hs2cc sent before rules existed,
// so they are kept when a mapping leaves them out and used when the mapped
// property is blank.
func withEnrollmentFields(ms []mapping, mapped [numStandard]bool) []mapping {
	for _, f := range [...]struct {
		id   fieldID
		kind sourceKind
	}{{fFirstName, srcFirstName}, {fLastName, srcLastName}, {fCountry, srcCountry}} {
		if !mapped[f.id] {
			ms = append(ms, mapping{field: f.id, kind: f.kind, source: specialName(f.kind)})
		}
	}
	for i := range ms {
		switch ms[i].field {
		case fFirstName:
			ms[i].fallback = srcFirstName
		case fLastName:
			ms[i].fallback = srcLastName
		case fCountry:
			ms[i].fallback = srcCountry
		}
	}
	return ms
}

// install makes ms the field mapping of r, in CC key order with the custom
// fields last, which is the order Contact fills and checks them in.
func (r *Rules) install(ms []mapping) {
	slices.SortFunc(ms, func(a, b mapping) int {
		if a.field != b.field {
			return int(a.field) - int(b.field)
		}
		return strings.Compare(a.cf, b.cf)
	})
	r.fields = ms
	r.nstd = slices.IndexFunc(ms, func(m mapping) bool { return m.field == fCustom })
	if r.nstd < 0 {
		r.nstd = len(ms)
	}
	for i := range ms {
		if ms[i].field == fCountry {
			r.country = &r.fields[i]
		}
	}
}

func standardNames() string {
	names := make([]string, len(standardFields))
	for i, f := range standardFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

func specialList() string {
	names := make([]string, 0, len(specialSources))
	for name := range specialSources {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Contact builds the CC import contact for e, or returns a reason to
// reject e instead. Values are trimmed; blank ones are left out, so CC
// keeps what it has. The country becomes the English name CC expects
// (CountryName), and for the United States and Canada a state code
// becomes the state's name. Nothing is ever cut short: a value over CC's
// limit rejects the contact with a reason naming the field, its source and
// its length in characters, because CC would otherwise refuse the whole
// import it travels in. Birthday and anniversary values are parsed into
// the forms CC accepts and reject the contact when they cannot be; a
// birthday with only its month or only its day is left out, as CC needs
// both.
func (r *Rules) Contact(e *store.Enrollment) (ccclient.ImportContact, string) {
	email := strings.TrimSpace(e.Email)
	if reason := checkEmail(email); reason != "" {
		return ccclient.ImportContact{}, reason
	}
	var vals [numStandard]string
	var from [numStandard]*mapping
	var fell [numStandard]bool
	for i := range r.fields[:r.nstd] {
		m := &r.fields[i]
		vals[m.field], fell[m.field] = m.value(e)
		from[m.field] = m
	}
	vals[fCountry] = CountryName(vals[fCountry])
	vals[fState] = stateName(vals[fState], vals[fCountry])

	c := ccclient.ImportContact{Email: email}
	for id := range numStandard {
		v := vals[id]
		if v == "" {
			continue
		}
		m := from[id]
		switch id {
		case fBirthdayMonth, fBirthdayDay:
			// Both are handled together below.
		case fAnniversary:
			t, ok := parseDate(v)
			if !ok {
				return ccclient.ImportContact{}, fmt.Sprintf("anniversary (%s) %q is not a date; use YYYY-MM-DD, MM/DD/YYYY or YYYY/MM/DD",
					m.origin(fell[id]), v)
			}
			c.Anniversary = t.Format("2006-01-02")
		default:
			if n := utf8.RuneCountInString(v); n > standardFields[id].max {
				return ccclient.ImportContact{}, tooLong(m.key(), m.origin(fell[id]), n, standardFields[id].max)
			}
			*stringField(&c, id) = v
		}
	}
	if vals[fBirthdayMonth] != "" || vals[fBirthdayDay] != "" {
		month, day, reason := birthday(vals[fBirthdayMonth], vals[fBirthdayDay], from[fBirthdayMonth], from[fBirthdayDay])
		if reason != "" {
			return ccclient.ImportContact{}, reason
		}
		c.BirthdayMonth, c.BirthdayDay = month, day
	}
	for i := range r.fields[r.nstd:] {
		m := &r.fields[r.nstd+i]
		v, _ := m.value(e)
		if v == "" {
			continue
		}
		if n := utf8.RuneCountInString(v); n > maxCustomValue {
			return ccclient.ImportContact{}, tooLong(m.key(), m.origin(false), n, maxCustomValue)
		}
		if c.CustomFields == nil {
			c.CustomFields = make(map[string]string, len(r.fields)-r.nstd)
		}
		c.CustomFields[m.cf] = v
	}
	return c, ""
}

func tooLong(key, origin string, n, limit int) string {
	return fmt.Sprintf("%s (%s) is %d characters; Constant Contact accepts at most %d", key, origin, n, limit)
}

// stringField returns the ImportContact field that id names; it is only
// called for the text fields.
func stringField(c *ccclient.ImportContact, id fieldID) *string {
	switch id {
	case fFirstName:
		return &c.FirstName
	case fLastName:
		return &c.LastName
	case fJobTitle:
		return &c.JobTitle
	case fCompanyName:
		return &c.CompanyName
	case fPhone:
		return &c.Phone
	case fHomePhone:
		return &c.HomePhone
	case fWorkPhone:
		return &c.WorkPhone
	case fMobilePhone:
		return &c.MobilePhone
	case fStreet:
		return &c.Street
	case fStreet2:
		return &c.Street2
	case fCity:
		return &c.City
	case fState:
		return &c.State
	case fZip:
		return &c.Zip
	case fCountry:
		return &c.Country
	}
	panic(fmt.Sprintf("routing: field %d is not a text field", id))
}

// checkEmail returns why CC would refuse email (already trimmed), or "".
// It checks only what CC's import enforces for certain, the length and
// the shape around the '@'; HubSpot has validated the address itself.
func checkEmail(email string) string {
	if email == "" {
		return "email is empty"
	}
	if n := utf8.RuneCountInString(email); n > maxText {
		return fmt.Sprintf("email is %d characters; Constant Contact accepts at most %d", n, maxText)
	}
	at := strings.IndexByte(email, '@')
	if at <= 0 || at == len(email)-1 || strings.IndexByte(email[at+1:], '@') >= 0 {
		return "email must contain exactly one @ with text before and after it"
	}
	return ""
}

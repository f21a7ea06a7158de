package ccsandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// fieldKind says how an import key is checked and stored.
type fieldKind int

const (
	fieldIgnored  fieldKind = iota // not a JsonImportContact key: dropped
	fieldText                      // stored as sent, within maxLength
	fieldEmail                     // the identity key
	fieldSMS                       // the SMS identity key
	fieldDate                      // anniversary, sms_consent_date
	fieldBirthday                  // birthday_month, birthday_day
)

// importField describes a JsonImportContact key: the name it is stored
// under, how it is checked, and its maxLength from the spec (0 for none).
// The spec declares "home country" with a space; whether CC also takes
// home_country is unconfirmed, so both are stored as home_country.
func importField(key string) (canon string, kind fieldKind, maxLen int) {
	switch key {
	case "email":
		return key, fieldEmail, 50
	case "sms_number":
		return key, fieldSMS, 16
	case "sms_consent_date":
		return key, fieldDate, 16
	case "anniversary":
		return key, fieldDate, 0
	case "birthday_month", "birthday_day":
		return key, fieldBirthday, 0
	case "first_name", "last_name", "job_title", "company_name",
		"phone", "home_phone", "work_phone", "mobile_phone", "other_phone",
		"city", "state", "zip", "country",
		"home_city", "home_state", "home_zip", "home_country",
		"work_city", "work_state", "work_zip", "work_country",
		"other_city", "other_state", "other_zip", "other_country":
		return key, fieldText, 50
	case "home country":
		return "home_country", fieldText, 50
	case "street", "street2",
		"home_street", "home_street2", "work_street", "work_street2", "other_street", "other_street2":
		return key, fieldText, 255
	}
	return "", fieldIgnored, 0
}

// importRecord is one validated import row, ready to upsert.
type importRecord struct {
	line          int               // 1-based position in import_data
	email         string            // lower-cased
	sms           string            // digits only
	text          map[string]string // canonical key -> value
	birthdayMonth int               // 0 when not sent
	birthdayDay   int
	custom        map[string]string // custom field name -> value
	// correctable marks a row CC would hold for correction in its UI (bad
	// email, SMS number, birthday or date) instead of importing it.
	correctable bool
	// rejected marks a row CC refuses outright (Faults.RejectRate), drawn
	// when the import is queued.
	rejected bool
}

// parseRecord validates one import row. A returned error is a 400 for the
// whole request (shape, length and count rules the spec states); problems CC
// counts as correctable only mark the record.
func parseRecord(i int, m map[string]any) (*importRecord, error) {
	rec := &importRecord{line: i + 1, text: map[string]string{}}
	var cf int
	var bd birthdayFields
	for k, v := range m {
		if v == nil {
			continue // null is as good as absent
		}
		var err error
		if name, ok := strings.CutPrefix(k, "cf:"); ok {
			cf++
			err = rec.setCustom(i, k, name, v)
		} else {
			err = rec.setField(i, k, v, &bd)
		}
		if err != nil {
			return nil, err
		}
	}
	if cf > maxCustomFieldsCF {
		return nil, fmt.Errorf("import_data[%d] has %d custom fields; the maximum is %d", i, cf, maxCustomFieldsCF)
	}
	if rec.email == "" && rec.sms == "" {
		return nil, fmt.Errorf("import_data[%d] must have an email or an sms_number", i)
	}
	if err := rec.setBirthday(i, bd); err != nil {
		return nil, err
	}
	rec.checkIdentity()
	return rec, nil
}

// birthdayFields holds birthday_month and birthday_day as the row sent
// them, because each requires the other and so they can only be checked
// once the whole row has been read.
type birthdayFields struct {
	month, day       any
	hasMonth, hasDay bool
}

// setCustom stores the custom field name, sent under the key k of row i,
// or returns why the request must be refused.
func (rec *importRecord) setCustom(i int, k, name string, v any) error {
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("import_data[%d].%s must be a string", i, k)
	}
	if n := utf8.RuneCountInString(str); n > 255 {
		return fmt.Errorf("import_data[%d].%s is %d characters; the maximum is 255", i, k, n)
	}
	if rec.custom == nil {
		rec.custom = map[string]string{}
	}
	rec.custom[name] = str
	return nil
}

// setField stores the standard field k of row i, or returns why the
// request must be refused. Birthday parts go to bd for setBirthday, and
// keys that are not JsonImportContact keys are dropped, as CC drops them.
func (rec *importRecord) setField(i int, k string, v any, bd *birthdayFields) error {
	canon, kind, maxLen := importField(k)
	switch kind {
	case fieldIgnored:
		return nil
	case fieldBirthday:
		if k == "birthday_month" {
			bd.month, bd.hasMonth = v, true
		} else {
			bd.day, bd.hasDay = v, true
		}
		return nil
	}
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("import_data[%d].%s must be a string", i, k)
	}
	if n := utf8.RuneCountInString(str); maxLen > 0 && n > maxLen {
		return fmt.Errorf("import_data[%d].%s is %d characters; the maximum is %d", i, k, n, maxLen)
	}
	switch kind {
	case fieldEmail:
		rec.email = strings.ToLower(strings.TrimSpace(str))
	case fieldSMS:
		rec.sms = strings.TrimSpace(str)
	case fieldDate:
		if str != "" {
			d, ok := parseCCDate(str)
			if !ok {
				rec.correctable = true
			}
			str = d
		}
		rec.text[canon] = str
	default:
		rec.text[canon] = str
	}
	return nil
}

// setBirthday stores the birthday of row i from bd. Parts that are not
// integers refuse the request, as the schema types them; parts out of
// range, or one without the other, only make the record correctable.
func (rec *importRecord) setBirthday(i int, bd birthdayFields) error {
	if !bd.hasMonth && !bd.hasDay {
		return nil
	}
	mo, errM := birthdayPart(bd.month, 12)
	d, errD := birthdayPart(bd.day, 31)
	switch {
	case errors.Is(errM, errBirthdayType) || errors.Is(errD, errBirthdayType):
		return fmt.Errorf("import_data[%d] birthday_month and birthday_day must be integers", i)
	case errM != nil || errD != nil:
		// Out of range, or one without the other (each requires the
		// other): CC counts the row as correctable.
		rec.correctable = true
	default:
		rec.birthdayMonth, rec.birthdayDay = mo, d
	}
	return nil
}

// checkIdentity marks the record correctable when its email or SMS number
// has a shape CC would hold for correction. A valid number is kept as its
// digits, so that 123-123-1234 and 1231231234 find the same contact.
func (rec *importRecord) checkIdentity() {
	if rec.email != "" && !validEmail(rec.email) {
		rec.correctable = true
	}
	if rec.sms != "" {
		digits, ok := usPhone(rec.sms)
		if !ok {
			rec.correctable = true
		}
		rec.sms = digits
	}
}

// errBirthdayType marks a birthday part that is not a JSON integer, which the
// schema rejects outright, as opposed to an integer out of range.
var errBirthdayType = errors.New("birthday part is not an integer")

// errBirthdayRange marks a birthday part outside its range.
var errBirthdayRange = errors.New("birthday part is out of range")

// birthdayPart reads birthday_month or birthday_day, which the schema types
// as integers from 1 to hi.
func birthdayPart(v any, hi int) (int, error) {
	if v == nil {
		return 0, errBirthdayRange
	}
	num, ok := v.(json.Number)
	if !ok {
		return 0, errBirthdayType
	}
	n, err := strconv.Atoi(num.String())
	if err != nil {
		return 0, errBirthdayType
	}
	if n < 1 || n > hi {
		return 0, errBirthdayRange
	}
	return n, nil
}

// parseCCDate accepts the date formats CC lists for anniversary and
// sms_consent_date (MM/DD/YYYY, M/D/YYYY, YYYY/MM/DD, YYYY/M/D, YYYY-MM-DD,
// YYYY-M-D, M-D-YYYY, M-DD-YYYY) and returns the date as YYYY-MM-DD, the form
// ContactResource reports it in. Go's one-digit layouts also take two digits.
func parseCCDate(s string) (string, bool) {
	for _, layout := range [...]string{"1/2/2006", "2006/1/2", "2006-1-2", "1-2-2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(time.DateOnly), true
		}
	}
	return s, false
}

// usPhone accepts the two SMS number formats CC documents, 1231231234 and
// 123-123-1234, and returns the digits.
func usPhone(s string) (string, bool) {
	digits := strings.ReplaceAll(s, "-", "")
	if len(digits) != 10 || (len(s) != 10 && len(s) != 12) {
		return s, false
	}
	if len(s) == 12 && (s[3] != '-' || s[7] != '-') {
		return s, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return s, false
		}
	}
	return digits, true
}

// validEmail is a plain syntax check of the kind CC applies before counting
// a row as correctable: one @, a local part, and a dotted domain of letters,
// digits and hyphens, with no spaces.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || strings.Contains(domain, "@") {
		return false
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return false
	}
	for _, r := range local {
		if r <= ' ' || r == '(' || r == ')' || r == ',' || r == ':' || r == ';' || r == '<' || r == '>' || r == '[' || r == ']' || r == '\\' || r == '"' || r > 0x7e {
			return false
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return len(labels[len(labels)-1]) >= 2
}

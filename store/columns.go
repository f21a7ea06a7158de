package store

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrFieldTooLong is wrapped by a *FieldTooLongError: a value HubSpot sent
// does not fit the column that keeps it. Strict MySQL refuses such a write
// with error 1406 every time, so without this check the same delivery
// would fail, and be answered 503 and retried by HubSpot, for three days.
var ErrFieldTooLong = errors.New("field too long")

// FieldTooLongError names the field that does not fit and by how much.
type FieldTooLongError struct {
	Field string // the enrollment's column, e.g. first_name
	Size  int    // the value's size, in Unit
	Limit int    // what the column holds, in Unit
	Unit  string // "bytes" or "characters", as the column counts
}

func (e *FieldTooLongError) Error() string {
	return fmt.Sprintf("field_too_long: %s is %d %s, its column holds %d", e.Field, e.Size, e.Unit, e.Limit)
}

func (e *FieldTooLongError) Unwrap() error { return ErrFieldTooLong }

// columnLimit is what one column of enrollments holds: VARCHAR(n) counts
// characters, the TEXT types count bytes.
type columnLimit struct {
	name  string
	limit int
	chars bool
	value func(e *Enrollment) string
}

// enrollmentColumnLimits are the limits of the columns a delivery writes
// from what HubSpot sent, as the migrations create them (0001_init). A
// migration that widens one of them changes it here.
var enrollmentColumnLimits = []columnLimit{
	{name: "object_key", limit: 191, chars: true, value: func(e *Enrollment) string { return e.ObjectKey }},
	{name: "email", limit: 254, chars: true, value: func(e *Enrollment) string { return e.Email }},
	{name: "first_name", limit: textBytes, value: func(e *Enrollment) string { return e.FirstName }},
	{name: "last_name", limit: textBytes, value: func(e *Enrollment) string { return e.LastName }},
	{name: "country", limit: textBytes, value: func(e *Enrollment) string { return e.Country }},
}

// The byte limits of MySQL's TEXT and MEDIUMTEXT.
const (
	textBytes       = 1<<16 - 1
	mediumTextBytes = 1<<24 - 1
)

// CheckColumns returns a *FieldTooLongError for the first field of e that
// its column cannot hold, or nil. Ingest checks this before it writes
// anything; callers may check earlier.
func CheckColumns(e *Enrollment) error {
	for _, c := range enrollmentColumnLimits {
		if err := c.check(c.value(e)); err != nil {
			return err
		}
	}
	return nil
}

// checkEncoded checks the JSON that Ingest writes for the properties and
// the lists, which only exists once it is encoded.
func checkEncoded(props, lists []byte) error {
	if len(props) > mediumTextBytes {
		return &FieldTooLongError{Field: "properties", Size: len(props), Limit: mediumTextBytes, Unit: "bytes"}
	}
	if len(lists) > textBytes {
		return &FieldTooLongError{Field: "lists", Size: len(lists), Limit: textBytes, Unit: "bytes"}
	}
	return nil
}

func (c columnLimit) check(v string) error {
	// A value no longer in bytes than the limit fits either way, and
	// counting characters is needed only past that.
	if len(v) <= c.limit {
		return nil
	}
	if !c.chars {
		return &FieldTooLongError{Field: c.name, Size: len(v), Limit: c.limit, Unit: "bytes"}
	}
	if n := utf8.RuneCountInString(v); n > c.limit {
		return &FieldTooLongError{Field: c.name, Size: n, Limit: c.limit, Unit: "characters"}
	}
	return nil
}

package routing

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dateLayouts are the anniversary formats CC documents (MM/DD/YYYY,
// M/D/YYYY, YYYY/MM/DD, YYYY/M/D, YYYY-MM-DD, YYYY-M-D, M-D-YYYY,
// M-DD-YYYY); Go's "1" and "2" accept one or two digits, so four layouts
// cover them. The time-stamped forms are what HubSpot and spreadsheets
// produce for date properties.
var dateLayouts = [...]string{
	"2006-1-2",
	"1/2/2006",
	"2006/1/2",
	"1-2-2006",
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

// parseDate reads a date in one of dateLayouts, or as the epoch
// milliseconds HubSpot uses for date properties (midnight UTC). A time of
// day is ignored: the date is taken as written, in its own offset. Bare
// numbers of fewer than nine digits are refused rather than read as
// milliseconds, because "20240131" or "2024" is far more likely a
// mistyped date than an instant in January 1970.
func parseDate(s string) (time.Time, bool) {
	if digits := strings.TrimPrefix(s, "-"); len(digits) >= 9 && allDigits(digits) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(ms).UTC(), true
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil && t.Year() >= 1 {
			return t, true
		}
	}
	return time.Time{}, false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

var monthNames = map[string]int{
	"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
	"august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
	"sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}

// daysIn is the longest each month can be; February allows the 29th, as a
// birthday has no year.
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// birthday turns the mapped month and day values into CC's two integers.
// Each may be a number, a date (so one date-of-birth property can feed
// both), and the month also an English month name. A value that is not
// one of these, or a day the month does not have, rejects the contact; a
// month without a day or a day without a month yields 0, 0, because CC
// needs both and the contact is fine without a birthday.
func birthday(month, day string, mm, dm *mapping) (int, int, string) {
	if month == "" || day == "" {
		return 0, 0, ""
	}
	mo, ok := parseMonth(month)
	if !ok {
		return 0, 0, fmt.Sprintf("birthday_month (%s) %q is not a month; use 1–12, a month name or a date", mm.origin(false), month)
	}
	d, ok := parseDay(day)
	if !ok {
		return 0, 0, fmt.Sprintf("birthday_day (%s) %q is not a day of the month; use 1–31 or a date", dm.origin(false), day)
	}
	if d > daysIn[mo] {
		return 0, 0, fmt.Sprintf("birthday %d/%d does not exist (%s, %s)", mo, d, mm.origin(false), dm.origin(false))
	}
	return mo, d, ""
}

func parseMonth(s string) (int, bool) {
	if len(s) <= 2 && allDigits(s) {
		n, _ := strconv.Atoi(s)
		return n, n >= 1 && n <= 12
	}
	if n, ok := monthNames[strings.ToLower(s)]; ok {
		return n, true
	}
	if t, ok := parseDate(s); ok {
		return int(t.Month()), true
	}
	return 0, false
}

func parseDay(s string) (int, bool) {
	if len(s) <= 2 && allDigits(s) {
		n, _ := strconv.Atoi(s)
		return n, n >= 1 && n <= 31
	}
	if t, ok := parseDate(s); ok {
		return t.Day(), true
	}
	return 0, false
}

package hubspot

import (
	"strconv"
	"strings"
	"time"
)

// parseTime reads a date property: epoch milliseconds (HubSpot's format),
// RFC 3339 or a plain YYYY-MM-DD date. It returns the zero time for anything
// else, including times that MySQL cannot store.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if ms, err := strconv.ParseUint(s, 10, 63); err == nil {
		return millisTime(int64(ms))
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil && !t.Before(minTime) && t.Before(maxTime) {
			return t.UTC()
		}
	}
	return time.Time{}
}

// The times a DATETIME column holds on MySQL and MariaDB. A time outside
// them (a fuzzed or garbled epoch value) would make every insert of the
// delivery fail, and HubSpot retry it for days, so it is read as absent.
var (
	minTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// millisTime converts epoch milliseconds, HubSpot's format for every time
// it sends, to UTC; it returns the zero time for 0 and for values beyond
// what MySQL can store.
func millisTime(ms int64) time.Time {
	if ms <= 0 || ms >= maxTime.UnixMilli() {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// lastModified returns the newer of the lastmodifieddate and
// hs_lastmodifieddate properties, the only sign of age that a customised
// body or a profile without versions may carry.
func lastModified(props map[string]string) time.Time {
	a := parseTime(props["lastmodifieddate"])
	if b := parseTime(props["hs_lastmodifieddate"]); b.After(a) {
		return b
	}
	return a
}

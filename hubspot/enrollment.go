package hubspot

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// FieldNames are the HubSpot property names (or, for a customised body, the
// keys) that hold the fields an Enrollment names. ParseWorkflow uses the
// default for any name left empty.
type FieldNames struct {
	Email, FirstName, LastName, Country, EnrolledAt string
}

// DefaultFieldNames returns HubSpot's internal names of the standard contact
// properties.
func DefaultFieldNames() FieldNames {
	return FieldNames{
		Email:      "email",
		FirstName:  "firstname",
		LastName:   "lastname",
		Country:    "country",
		EnrolledAt: "createdate",
	}
}

// withDefaults fills empty names from DefaultFieldNames, so that a
// configuration can override one name without restating the others.
func (n FieldNames) withDefaults() FieldNames {
	d := DefaultFieldNames()
	return FieldNames{
		Email:      cmp.Or(n.Email, d.Email),
		FirstName:  cmp.Or(n.FirstName, d.FirstName),
		LastName:   cmp.Or(n.LastName, d.LastName),
		Country:    cmp.Or(n.Country, d.Country),
		EnrolledAt: cmp.Or(n.EnrolledAt, d.EnrolledAt),
	}
}

// Enrollment is one record enrolled in the workflow, in the shape the rest of
// hs2cc works with whichever body style HubSpot sent.
type Enrollment struct {
	PortalID   int64     // 0 when the body has none
	ObjectID   string    // HubSpot object id as decimal text; "" when the body has none
	Email      string    // trimmed, as sent (case kept)
	FirstName  string    // trimmed
	LastName   string    // trimmed
	Country    string    // trimmed
	EnrolledAt time.Time // UTC; zero when absent or unparseable
	// Properties holds every property's current value as text, untrimmed.
	Properties map[string]string
	// SourceUpdatedAt is how recent HubSpot's data in the body is, so that a
	// late delivery can be told from a newer one (UTC; zero when the body
	// does not say). For a contact profile it is the newest version
	// timestamp of any property that is not HubSpot's own bookkeeping; a
	// body without versions falls back to lastmodifieddate or
	// hs_lastmodifieddate. It is not part of ContentHash: a retry that
	// HubSpot stamped anew still carries the same content.
	SourceUpdatedAt time.Time
}

// ObjectKey returns the dedupe key of the enrollment within its portal: the
// object id when the body has one, else "email:" and the lower-cased email,
// because a customised body need not include the id.
func (e Enrollment) ObjectKey() string {
	key := e.ObjectID
	if key == "" {
		key = "email:" + strings.ToLower(e.Email)
	}
	if len(key) > MaxObjectKey {
		// A long email (up to 254 bytes is usable) must still fit a unique
		// index; a hash keeps the key stable and distinct.
		sum := sha256.Sum256([]byte(key))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// MaxObjectKey is the longest key ObjectKey returns, the width of the
// store's unique index column.
const MaxObjectKey = 191

// parseID parses a decimal id that fits in an int64, or returns 0.
func parseID(s string) uint64 {
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 63)
	if err != nil {
		return 0
	}
	return id
}

// idText renders an id canonically, so that "0101" and 101 dedupe alike.
func idText(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

package hubspot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// ContentHash returns a stable hex SHA-256 over the enrollment's fields and
// its non-volatile properties in name order, so that a retried delivery
// hashes equal and a changed record does not. Every string is length-prefixed,
// so no two different enrollments can encode to the same input. The hash is
// stored, so the encoding must never change.
func (e Enrollment) ContentHash() string {
	// The properties are sorted as pairs, on the stack for most profiles,
	// so that the values need no second lookup in the map.
	type property struct{ name, value string }
	var pairs [64]property
	props := pairs[:0]
	for name, value := range e.Properties {
		if !volatileProperty(name) {
			props = append(props, property{name, value})
		}
	}
	slices.SortFunc(props, func(a, b property) int { return strings.Compare(a.name, b.name) })

	var buf [1024]byte
	b := appendField(buf[:0], "hs2cc-enrollment-v1")
	b = appendIntField(b, e.PortalID)
	b = appendField(b, e.ObjectID)
	b = appendField(b, e.Email)
	b = appendField(b, e.FirstName)
	b = appendField(b, e.LastName)
	b = appendField(b, e.Country)
	if e.EnrolledAt.IsZero() {
		b = appendField(b, "")
	} else {
		b = appendIntField(b, e.EnrolledAt.UnixMilli())
	}
	for _, p := range props {
		b = appendField(appendField(b, p.name), p.value)
	}
	sum := sha256.Sum256(b)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	return string(hexSum[:])
}

// appendField appends s prefixed with its length as a uvarint. The prefix
// is what keeps the encoding unambiguous: without it, a value moved from one
// field to the next would hash the same.
func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendIntField appends n in decimal as appendField would append its
// text, without making the text a string first.
func appendIntField(b []byte, n int64) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	return append(binary.AppendUvarint(b, uint64(len(d))), d...)
}

// volatileProperty reports whether HubSpot changes a property on its own, so
// that it must not make a retried delivery look like new content. The list is
// kept to bookkeeping: modification stamps, and the web-analytics counters
// that tracking bumps on every page view.
func volatileProperty(name string) bool {
	switch name {
	case "lastmodifieddate",
		"hs_lastmodifieddate",
		"hs_analytics_last_timestamp",
		"hs_analytics_last_visit_timestamp",
		"hs_analytics_num_page_views",
		"hs_analytics_num_visits":
		return true
	}
	return false
}

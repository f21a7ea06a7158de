package hubspot

import "time"

// profileProperties reads properties.<name>.value from the object that
// starts at b[i], and returns it with the newest versions[].timestamp of the
// properties that are not bookkeeping and the index just past the object.
// A property given as a bare value is taken as it is, which is how the CRM
// v3 object API shapes records other than contacts.
//
// Bookkeeping properties are left out of the newest version for the reason
// ContentHash skips them: HubSpot bumps them on a retry, and a retry must
// not look newer than the change it repeats.
func profileProperties(b []byte, i int) (map[string]string, time.Time, int) {
	var text [1024]byte
	var entries [32]propertyEntry
	p := propertyTexts{text: text[:0], entries: entries[:0]}
	it := members(b, i)
	for it.next() {
		if it.peek() != '{' {
			p = p.add(it.key, it.value(), time.Time{})
			continue
		}
		value, newest, end := propertyParts(b, it.i)
		it.consumed(end)
		p = p.add(it.key, value, newest)
	}
	props, newest := p.properties()
	return props, newest, it.i
}

// propertyTexts gathers properties in the order they appear, with the text
// of every name and value in one buffer, so that properties can make the
// map with one allocation for all the text and one for the map, instead of
// one for each string and several more as the map grows. The callers start
// it on arrays of their own, which hold most bodies without allocating.
type propertyTexts struct {
	text    []byte
	entries []propertyEntry
}

// propertyEntry is one property: its name is text[start:nameEnd] and its
// value text[nameEnd:end].
type propertyEntry struct {
	start, nameEnd, end int
	scalar              bool      // false when the property has no value
	newest              time.Time // the newest version of the property
}

// add appends the property with the quoted name key, the raw value, and
// the newest version in its history. It takes and returns p by value
// because escape analysis would move the callers' arrays to the heap if it
// appended through a pointer.
func (p propertyTexts) add(key, value []byte, newest time.Time) propertyTexts {
	e := propertyEntry{start: len(p.text), newest: newest}
	p.text = appendUnquoted(p.text, key)
	e.nameEnd = len(p.text)
	p.text, e.scalar = appendScalar(p.text, value)
	e.end = len(p.text)
	p.entries = append(p.entries, e)
	return p
}

// properties returns the properties with a scalar value, and the newest
// version of those that are not bookkeeping. Like encoding/json, it lets
// the last occurrence of a name replace the earlier ones, value and history
// alike.
func (p propertyTexts) properties() (map[string]string, time.Time) {
	text := string(p.text)
	out := make(map[string]string, len(p.entries))
	for _, e := range p.entries {
		out[text[e.start:e.nameEnd]] = text[e.nameEnd:e.end]
	}
	// last is made only when a name occurs more than once, to tell its
	// last occurrence from the others.
	var last map[string]int
	if len(out) < len(p.entries) {
		last = make(map[string]int, len(out))
		for i, e := range p.entries {
			last[text[e.start:e.nameEnd]] = i
		}
	}
	var newest time.Time
	for i, e := range p.entries {
		name := text[e.start:e.nameEnd]
		if last != nil && last[name] != i {
			continue
		}
		if !e.scalar {
			delete(out, name)
		}
		if !volatileProperty(name) && e.newest.After(newest) {
			newest = e.newest
		}
	}
	return out, newest
}

// propertyParts reads the profile property object that starts at b[i]:
// its value, the newest timestamp of its version history, and the index
// just past it.
func propertyParts(b []byte, i int) (value []byte, newest time.Time, end int) {
	it := members(b, i)
	for it.next() {
		switch string(memberName(it.key)) {
		case "value":
			value = it.value()
		case "versions":
			newest, end = newestIn(b, it.i)
			it.consumed(end)
		}
	}
	return value, newest, it.i
}

// newestIn returns the newest timestamp in the version history that starts
// at b[i], or the zero time, and the index just past the history.
func newestIn(b []byte, i int) (time.Time, int) {
	var newest time.Time
	if b[i] != '[' {
		return newest, skipValue(b, i)
	}
	vs := elements(b, i)
	for vs.next() {
		if vs.peek() != '{' {
			continue
		}
		var ts []byte
		v := members(b, vs.i)
		for v.next() {
			if string(memberName(v.key)) == "timestamp" {
				ts = v.value()
			}
		}
		vs.consumed(v.i)
		if t := jsonMillis(ts); t.After(newest) {
			newest = t
		}
	}
	return newest, vs.i
}

// flatProperties takes every scalar member of a customised body. Nested
// objects and arrays are skipped because a property value is never one; a
// later member replaces an earlier one of the same name, whatever its kind.
func flatProperties(obj []byte) map[string]string {
	var text [1024]byte
	var entries [32]propertyEntry
	p := propertyTexts{text: text[:0], entries: entries[:0]}
	for it := members(obj, 0); it.next(); {
		p = p.add(it.key, it.value(), time.Time{})
	}
	props, _ := p.properties()
	return props
}

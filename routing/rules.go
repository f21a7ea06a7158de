package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hs2cc/hs2cc/ccclient"
	"gopkg.in/yaml.v3"
)

// Limits that Parse enforces so that no enrollment can later produce an
// import Constant Contact refuses.
const (
	// MaxLists is the most lists one contact can be routed to: CC takes
	// 1–50 list_ids per import, and every contact of an import goes on
	// every list of it.
	MaxLists = ccclient.MaxImportListIDs
	// MaxCustomFields is CC's limit of cf: fields per imported contact.
	MaxCustomFields = 25
	// maxListName is CC's maxLength for a contact list's name.
	maxListName = 255
)

// ErrInvalidRules is wrapped by every error Parse returns for a rules file
// that is not valid, as opposed to one that could not be read.
var ErrInvalidRules = errors.New("invalid routing rules")

// ErrNoRoute is what Lists returns for an enrollment that matched no route
// when the rules have no default_lists. Its text is meant to be stored as
// the enrollment's rejection reason.
var ErrNoRoute = errors.New("no route matched and no default_lists")

// Rules decides, for each enrollment, the CC lists it goes on (Lists) and
// the contact fields sent for it (Contact). It is immutable after Parse or
// Default, so one value is safe for concurrent use.
type Rules struct {
	defaults      []string // sorted, distinct
	createMissing bool
	createFields  bool
	routes        []route
	fields        []mapping // standard fields in JSON order, then cf: by name
	nstd          int       // fields[:nstd] are the standard fields
	country       *mapping  // the country mapping, also used for matching
	all           []string  // every list the rules can produce, sorted
	// fromEnv says the defaults are HS2CC_CC_LISTS rather than a rules
	// file's default_lists, for Route's account of why.
	fromEnv bool
}

// Default returns the rules used when no rules file is configured: every
// enrollment goes on lists (trimmed, blanks and duplicates dropped), no
// list is created, and fields follow the default mapping (see the package
// documentation). With no usable list name, Lists returns ErrNoRoute.
func Default(lists []string) *Rules {
	r := &Rules{defaults: normaliseNames(lists), fromEnv: true}
	r.setFields(defaultFieldMap(), nil, 0, nil)
	r.all = slices.Clone(r.defaults)
	return r
}

// Parse reads a rules file. Unknown keys, routes that cannot match or
// route nowhere, unknown CC fields and rules that could put a contact on
// more than MaxLists lists are all errors; every problem found is reported
// at once, each with its line, and the error wraps ErrInvalidRules.
func Parse(data []byte) (*Rules, error) {
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalid([]string{"the file is empty"})
		}
		return nil, invalid(yamlProblems(err))
	}
	// A second document would be silently ignored, so it is an error,
	// unless it is empty (a stray --- at the end).
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) && (err != nil || !emptyDocument(&extra)) {
		return nil, invalid([]string{"the file holds more than one YAML document; remove the extra ---"})
	}
	// The typed decode above has no positions, so the file is read a second
	// time as nodes just to name the line of each problem. It cannot fail
	// where the first read succeeded.
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	pos := positionsOf(&root)

	var p problems
	r := &Rules{createMissing: doc.CreateMissingLists, createFields: doc.CreateMissingFields}
	r.defaults = p.listNames(doc.DefaultLists, "default_lists", pos.defaultLists)
	for i, rd := range doc.Routes {
		line := 0
		if i < len(pos.routes) {
			line = pos.routes[i]
		}
		r.routes = append(r.routes, compileRoute(rd, fmt.Sprintf("routes[%d]", i), line, &p))
	}
	if len(doc.Routes) == 0 && len(r.defaults) == 0 && len(p.list) == 0 {
		p.add(0, "", "no routes and no default_lists: every enrollment would be rejected")
	}
	fields := doc.Fields
	if fields == nil {
		fields = defaultFieldMap()
	}
	r.setFields(fields, pos.fields, pos.fieldsLine, &p)

	all := slices.Clone(r.defaults)
	for i := range r.routes {
		all = append(all, r.routes[i].lists...)
	}
	slices.Sort(all)
	r.all = slices.Compact(all)
	if len(r.all) > MaxLists {
		p.add(0, "", "default_lists and the routes name %d distinct lists; a contact matching every route would go on all of them, and Constant Contact accepts at most %d lists per import",
			len(r.all), MaxLists)
	}
	if len(p.list) > 0 {
		return nil, invalid(p.list)
	}
	return r, nil
}

// AllLists returns every list name the rules can produce, sorted, so that
// start-up can resolve (or create) each one in CC before any import needs
// it. The slice is the caller's.
func (r *Rules) AllLists() []string { return slices.Clone(r.all) }

// CreateMissing reports whether lists that do not exist in CC should be
// created rather than waited for.
func (r *Rules) CreateMissing() bool { return r.createMissing }

// CustomFields returns the names of the CC custom fields the rules map to
// (the "cf:" keys without the prefix), sorted; CC drops the value of a key
// that names no field of the account, so each must exist.
func (r *Rules) CustomFields() []string {
	var out []string
	for _, m := range r.fields[r.nstd:] {
		out = append(out, m.cf)
	}
	return out
}

// CreateMissingFields reports whether custom fields that do not exist in
// CC should be created rather than waited for.
func (r *Rules) CreateMissingFields() bool { return r.createFields }

// fileDoc is the YAML shape of a rules file. Decoding it with KnownFields
// turns a misspelt key into an error instead of a silently ignored rule.
type fileDoc struct {
	DefaultLists        stringList        `yaml:"default_lists"`
	CreateMissingLists  bool              `yaml:"create_missing_lists"`
	CreateMissingFields bool              `yaml:"create_missing_fields"`
	Routes              []routeDoc        `yaml:"routes"`
	Fields              map[string]string `yaml:"fields"`
}

type routeDoc struct {
	When      *whenDoc   `yaml:"when"`
	Lists     stringList `yaml:"lists"`
	Exclusive bool       `yaml:"exclusive"`
}

type whenDoc struct {
	Country  stringList `yaml:"country"`
	Property string     `yaml:"property"`
	Equals   *string    `yaml:"equals"` // a pointer, so that equals: "" is a condition
	In       stringList `yaml:"in"`
	Exists   string     `yaml:"exists"`
}

// stringList accepts one string or a list of them, since a route with a
// single list is naturally written without brackets. set distinguishes an
// explicit empty list, which is an error, from an absent key.
type stringList struct {
	vals []string
	set  bool
}

// UnmarshalYAML reports a wrong shape as a *yaml.TypeError, so that the
// decoder goes on and the problem is listed with the others.
func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	l.set = true
	switch n.Kind {
	case yaml.ScalarNode:
		l.vals = []string{scalarText(n)}
		return nil
	case yaml.SequenceNode:
		l.vals = make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if c.Kind != yaml.ScalarNode {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a name, found a %s", c.Line, kindName(c.Kind))}}
			}
			l.vals = append(l.vals, scalarText(c))
		}
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a name or a list of names, found a %s", n.Line, kindName(n.Kind))}}
}

// scalarText returns a scalar's text, with null ("~" or nothing) as "".
func scalarText(n *yaml.Node) string {
	if n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// positions holds the lines that problems refer to.
type positions struct {
	defaultLists int
	routes       []int          // line of each route, in order
	fields       map[string]int // line of each key under fields
	fieldsLine   int
}

func positionsOf(root *yaml.Node) positions {
	var pos positions
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return pos
	}
	top := deref(root.Content[0])
	if k, _ := mapEntry(top, "default_lists"); k != nil {
		pos.defaultLists = k.Line
	}
	if _, v := mapEntry(top, "routes"); v != nil && v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			pos.routes = append(pos.routes, deref(item).Line)
		}
	}
	if k, v := mapEntry(top, "fields"); v != nil && v.Kind == yaml.MappingNode {
		pos.fieldsLine = k.Line
		pos.fields = make(map[string]int, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			pos.fields[v.Content[i].Value] = v.Content[i].Line
		}
	}
	return pos
}

// emptyDocument reports whether n is a document with nothing but null.
func emptyDocument(n *yaml.Node) bool {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// mapEntry returns the key and value nodes of key in mapping m.
func mapEntry(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], deref(m.Content[i+1])
		}
	}
	return nil, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// problems collects everything wrong with a rules file, so that one run
// shows the operator all of it rather than one error per edit.
type problems struct{ list []string }

func (p *problems) add(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	p.list = append(p.list, msg)
}

// listNames checks and normalises the list names under path: trimmed,
// non-empty, within CC's name length, sorted and distinct.
func (p *problems) listNames(l stringList, path string, line int) []string {
	if l.set && len(l.vals) == 0 {
		p.add(line, path, "the list of list names is empty")
	}
	out := make([]string, 0, len(l.vals))
	for i, v := range l.vals {
		name := strings.TrimSpace(v)
		switch n := utf8.RuneCountInString(name); {
		case name == "":
			p.add(line, fmt.Sprintf("%s[%d]", path, i), "the list name is empty")
			continue
		case n > maxListName:
			p.add(line, fmt.Sprintf("%s[%d]", path, i), "the list name is %d characters; Constant Contact accepts at most %d", n, maxListName)
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// normaliseNames trims names and drops blanks and duplicates, for lists
// that come from configuration other than a rules file.
func normaliseNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rulesError lists the problems of an invalid rules file.
type rulesError struct{ problems []string }

func invalid(problems []string) error { return &rulesError{problems: problems} }

func (e *rulesError) Error() string {
	if len(e.problems) == 1 {
		return "routing: parse rules: " + e.problems[0]
	}
	return fmt.Sprintf("routing: parse rules: %d problems:\n  %s", len(e.problems), strings.Join(e.problems, "\n  "))
}

func (e *rulesError) Unwrap() error { return ErrInvalidRules }

// unknownField matches yaml.v3's KnownFields message, which names Go types
// an operator has never seen.
var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type routing\.(\w+)$`)

// sectionKeys names, per YAML type, the section and its allowed keys for
// the rewritten unknown-key message.
var sectionKeys = map[string][2]string{
	"fileDoc":  {"the top level", "default_lists, create_missing_lists, create_missing_fields, routes, fields"},
	"routeDoc": {"a route", "when, lists, exclusive"},
	"whenDoc":  {"when", "country, property, equals, in, exists"},
}

var goTypeNames = strings.NewReplacer(
	"[]routing.routeDoc", "a list of routes",
	"routing.fileDoc", "a mapping of rules",
	"routing.routeDoc", "a route mapping",
	"routing.whenDoc", "a when mapping",
	"map[string]string", "a mapping of CC fields to HubSpot properties",
	"!!seq", "a list",
	"!!map", "a mapping",
	"!!str", "a string",
)

// yamlProblems turns a decode error into problems worded for the file's
// author: unknown keys name the section and its valid keys, and Go type
// names become plain words.
func yamlProblems(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.Contains(msg, "cannot start any token") {
			// Almost always an unquoted "@enrolled_at"; '@' is reserved in YAML.
			msg += ` (values starting with @ must be quoted, as in "@enrolled_at")`
		}
		return []string{msg}
	}
	out := make([]string, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			if s, ok := sectionKeys[m[3]]; ok {
				out = append(out, fmt.Sprintf("line %s: unknown key %q in %s (valid keys: %s)", m[1], m[2], s[0], s[1]))
				continue
			}
		}
		out = append(out, goTypeNames.Replace(msg))
	}
	return out
}

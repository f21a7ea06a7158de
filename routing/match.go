package routing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hs2cc/hs2cc/store"
)

// route is one compiled entry of routes: all of conds must hold for its
// lists to apply.
type route struct {
	conds     []cond
	lists     []string // sorted, distinct, never empty
	exclusive bool
	// desc names the route for a person reading why a contact went where
	// it went: its place in the file and its conditions.
	desc string
}

type condKind uint8

const (
	condCountry condKind = iota + 1 // country is one of values (match keys)
	condEquals                      // property equals values[0]
	condIn                          // property equals one of values
	condExists                      // property has a non-blank value
)

type cond struct {
	kind     condKind
	property string
	values   []string // trimmed; for condCountry, countryMatchKey of each
}

// compileRoute checks one route and turns it into conditions; problems
// go to p and the result is then never used.
func compileRoute(rd routeDoc, path string, line int, p *problems) route {
	rt := route{exclusive: rd.Exclusive, desc: describeRoute(rd, path)}
	if !rd.Lists.set || len(rd.Lists.vals) == 0 {
		p.add(line, path, "the route has no lists; say where matching enrollments go with lists: [...]")
	} else {
		rt.lists = p.listNames(rd.Lists, path+".lists", line)
	}
	if rd.When == nil {
		p.add(line, path, "the route has no when; give at least one condition (country, property with equals or in, or exists)")
		return rt
	}
	w := rd.When
	wpath := path + ".when"
	if w.Country.set {
		var keys []string
		for i, c := range w.Country.vals {
			k := countryMatchKey(c)
			if k == "" {
				p.add(line, fmt.Sprintf("%s.country[%d]", wpath, i), "the country is empty")
				continue
			}
			keys = append(keys, k)
		}
		if len(w.Country.vals) == 0 {
			p.add(line, wpath+".country", "the list of countries is empty")
		}
		rt.conds = append(rt.conds, cond{kind: condCountry, values: keys})
	}
	property := strings.TrimSpace(w.Property)
	switch {
	case w.Equals != nil && w.In.set:
		p.add(line, wpath, "equals and in are both set; use equals for one value or in for several")
	case (w.Equals != nil || w.In.set) && property == "":
		p.add(line, wpath, "equals and in need property: the HubSpot property to compare")
	case w.Equals != nil:
		rt.conds = append(rt.conds, cond{kind: condEquals, property: property, values: []string{strings.TrimSpace(*w.Equals)}})
	case w.In.set:
		if len(w.In.vals) == 0 {
			p.add(line, wpath+".in", "the list of values is empty")
		}
		vals := make([]string, len(w.In.vals))
		for i, v := range w.In.vals {
			vals[i] = strings.TrimSpace(v)
		}
		rt.conds = append(rt.conds, cond{kind: condIn, property: property, values: vals})
	case w.Property != "":
		p.add(line, wpath, "property %q needs equals or in (or use exists: %s to test that it has a value)", property, property)
	}
	if w.Exists != "" {
		if name := strings.TrimSpace(w.Exists); name == "" {
			p.add(line, wpath+".exists", "the property name is empty")
		} else {
			rt.conds = append(rt.conds, cond{kind: condExists, property: name})
		}
	}
	if !w.Country.set && w.Property == "" && w.Equals == nil && !w.In.set && w.Exists == "" {
		p.add(line, wpath, "when has no condition; give country, property with equals or in, or exists")
	}
	return rt
}

// Lists returns the names of the CC lists e goes on, sorted and distinct:
// the lists of every route whose conditions all hold, plus default_lists
// unless one of those routes is exclusive. With no list at all it returns
// ErrNoRoute.
//
// Country conditions compare the contact's country as Contact resolves it
// (the mapped country property, else e.Country), so that a contact is
// routed by the country CC will show for it; codes, aliases and names of
// the same country are equal.
func (r *Rules) Lists(e *store.Enrollment) ([]string, error) {
	lists, _, err := r.Route(e)
	return lists, err
}

// Route returns what Lists returns and why, in words a person reads in a
// trace: each route that matched with its conditions and lists, then the
// default lists when they were added, e.g. "routes[0] (country US) →
// Agents - North America; default_lists → New Agents".
func (r *Rules) Route(e *store.Enrollment) ([]string, string, error) {
	out := make([]string, 0, len(r.defaults)+4)
	var why []string
	exclusive := false
	country, haveCountry := "", false
	for i := range r.routes {
		rt := &r.routes[i]
		ok := true
		for j := range rt.conds {
			c := &rt.conds[j]
			if c.kind == condCountry && !haveCountry {
				v, _ := r.country.value(e)
				country, haveCountry = countryMatchKey(v), true
			}
			if !c.holds(e, country) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, rt.lists...)
			exclusive = exclusive || rt.exclusive
			why = append(why, rt.desc+" → "+strings.Join(rt.lists, ", "))
		}
	}
	if !exclusive && len(r.defaults) > 0 {
		out = append(out, r.defaults...)
		why = append(why, r.defaultsName()+" → "+strings.Join(r.defaults, ", "))
	}
	if len(out) == 0 {
		return nil, "", ErrNoRoute
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxLists {
		// Parse rules this out; only Default given too many names gets here.
		return nil, "", fmt.Errorf("routed to %d lists; Constant Contact accepts at most %d per import", len(out), MaxLists)
	}
	return out, strings.Join(why, "; "), nil
}

// defaultsName says where the default lists come from: the rules file's
// default_lists, or HS2CC_CC_LISTS when there is no rules file.
func (r *Rules) defaultsName() string {
	if r.fromEnv {
		return "HS2CC_CC_LISTS"
	}
	return "default_lists"
}

// describeRoute names a route by its place in the file and its conditions,
// as written, e.g. "routes[1] (agent_tier = gold, exclusive)".
func describeRoute(rd routeDoc, path string) string {
	var parts []string
	if w := rd.When; w != nil {
		if w.Country.set {
			parts = append(parts, "country "+strings.Join(w.Country.vals, ", "))
		}
		property := strings.TrimSpace(w.Property)
		switch {
		case w.Equals != nil:
			parts = append(parts, property+" = "+strings.TrimSpace(*w.Equals))
		case w.In.set:
			parts = append(parts, property+" in "+strings.Join(w.In.vals, ", "))
		}
		if name := strings.TrimSpace(w.Exists); name != "" {
			parts = append(parts, name+" exists")
		}
	}
	desc := path + " (" + strings.Join(parts, " and ")
	if rd.Exclusive {
		desc += ", exclusive"
	}
	return desc + ")"
}

// holds reports whether c is true for e; country is e's match key.
// Property values compare trimmed and case-insensitively, since HubSpot
// dropdown values and hand-typed text differ in case more than in meaning.
func (c *cond) holds(e *store.Enrollment, country string) bool {
	switch c.kind {
	case condCountry:
		return country != "" && slices.Contains(c.values, country)
	case condExists:
		return strings.TrimSpace(e.Properties[c.property]) != ""
	case condEquals, condIn:
		v := strings.TrimSpace(e.Properties[c.property])
		for _, want := range c.values {
			if strings.EqualFold(v, want) {
				return true
			}
		}
	}
	return false
}

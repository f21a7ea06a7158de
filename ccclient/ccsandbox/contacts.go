package ccsandbox

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Email permissions a contact can hold.
const (
	permImplicit     = "implicit"
	permUnsubscribed = "unsubscribed"
)

// maxListsFilter is how many list ids GET /v3/contacts?lists= accepts.
const maxListsFilter = 25

// contact is one contact of the sandbox account. Fields an import can set
// live in text under the import's key names, so a partial update is a
// partial map merge.
type contact struct {
	id            string
	email         string // lower-cased; "" for an SMS-only contact
	sms           string // digits only
	permission    string
	optInSource   string
	optInDate     time.Time
	optOutDate    time.Time
	text          map[string]string
	birthdayMonth int
	birthdayDay   int
	custom        map[string]string // custom_field_id -> value
	lists         []string          // list ids, in the order added
	createdAt     time.Time
	updatedAt     time.Time
}

// SandboxContact is the sandbox's plain view of a contact, for tests and for
// people watching `hs2cc dev`. It is not a CC shape.
type SandboxContact struct {
	ContactID string `json:"contact_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	// Permission is email_address.permission_to_send: implicit for contacts
	// an import created, unsubscribed after Unsubscribe.
	Permission string   `json:"permission_to_send"`
	ListIDs    []string `json:"list_ids"`
	ListNames  []string `json:"list_names"`
	SMSNumber  string   `json:"sms_number,omitempty"`
	// Fields holds every other imported field under its import key
	// ("company_name", "city", "home_country", …), birthdays as numbers.
	Fields map[string]string `json:"fields,omitempty"`
	// CustomFields maps custom field names (as in "cf:<name>") to values.
	CustomFields  map[string]string `json:"custom_fields,omitempty"`
	BirthdayMonth int               `json:"birthday_month,omitempty"`
	BirthdayDay   int               `json:"birthday_day,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// sandboxViewLocked converts c to a SandboxContact.
func (s *Server) sandboxViewLocked(c *contact) SandboxContact {
	v := SandboxContact{
		ContactID:     c.id,
		Email:         c.email,
		FirstName:     c.text["first_name"],
		LastName:      c.text["last_name"],
		Permission:    c.permission,
		ListIDs:       slices.Clone(c.lists),
		ListNames:     make([]string, 0, len(c.lists)),
		SMSNumber:     c.sms,
		BirthdayMonth: c.birthdayMonth,
		BirthdayDay:   c.birthdayDay,
		CreatedAt:     c.createdAt,
		UpdatedAt:     c.updatedAt,
	}
	if v.ListIDs == nil {
		v.ListIDs = []string{}
	}
	for _, id := range c.lists {
		if l := s.listByID[id]; l != nil {
			v.ListNames = append(v.ListNames, l.name)
		}
	}
	for k, val := range c.text {
		if k != "first_name" && k != "last_name" {
			if v.Fields == nil {
				v.Fields = map[string]string{}
			}
			v.Fields[k] = val
		}
	}
	for id, val := range c.custom {
		if f := s.fieldByIDLocked(id); f != nil {
			if v.CustomFields == nil {
				v.CustomFields = map[string]string{}
			}
			v.CustomFields[f.name] = val
		}
	}
	return v
}

// Contacts returns every contact, sorted by email, after settling imports
// that are due on the sandbox clock. It is the data of GET /sandbox/contacts.
func (s *Server) Contacts() []SandboxContact {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(s.nowLocked())
	out := make([]SandboxContact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, s.sandboxViewLocked(c))
	}
	slices.SortFunc(out, func(a, b SandboxContact) int {
		return cmp.Or(cmp.Compare(a.Email, b.Email), cmp.Compare(a.SMSNumber, b.SMSNumber), cmp.Compare(a.ContactID, b.ContactID))
	})
	return out
}

// Unsubscribe marks the contact with this email unsubscribed, as if the
// person had clicked the link in a campaign, creating the contact if the
// account has never seen it. As in CC, an unsubscribed contact leaves all
// its lists and no import puts it back on one.
func (s *Server) Unsubscribe(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.settleLocked(now)
	key := strings.ToLower(strings.TrimSpace(email))
	c := s.byEmail[key]
	if c == nil {
		c = s.newContactLocked(key, "", now)
		c.optInSource = "Contact"
	}
	c.permission = permUnsubscribed
	c.optOutDate = now
	c.lists = nil
	c.updatedAt = now
	s.log.Info("ccsandbox: contact unsubscribed", "email", key)
}

// newContactLocked creates and indexes a contact the way an import does:
// implicit permission, opted in by the account.
func (s *Server) newContactLocked(email, sms string, at time.Time) *contact {
	c := &contact{
		id:          newUUID(),
		email:       email,
		sms:         sms,
		permission:  permImplicit,
		optInSource: "Account",
		optInDate:   at,
		text:        map[string]string{},
		custom:      map[string]string{},
		createdAt:   at,
		updatedAt:   at,
	}
	s.contacts = append(s.contacts, c)
	if email != "" {
		s.byEmail[email] = c
	}
	if sms != "" {
		s.bySMS[sms] = c
	}
	return c
}

// upsertResult is what one import row did to the account.
type upsertResult struct {
	unsubscribed bool // the contact had unsubscribed, so no list was added
	listsDropped int  // lists not added because the contact was at the cap
}

// upsertLocked applies one import row: it finds the contact by email (or,
// for an SMS-only row, by number), creates it if new, changes only the keys
// the row sent, and adds (never removes) the import's lists.
func (s *Server) upsertLocked(rec *importRecord, listIDs []string, at time.Time) upsertResult {
	var c *contact
	if rec.email != "" {
		c = s.byEmail[rec.email]
	} else {
		c = s.bySMS[rec.sms]
	}
	if c == nil {
		c = s.newContactLocked(rec.email, rec.sms, at)
	} else if rec.sms != "" && c.sms != rec.sms {
		if s.bySMS[c.sms] == c {
			delete(s.bySMS, c.sms)
		}
		c.sms = rec.sms
		s.bySMS[rec.sms] = c
	}
	for k, v := range rec.text {
		switch {
		case v != "":
			c.text[k] = v
		case s.opts.EmptyStringClears:
			delete(c.text, k)
		}
	}
	if rec.birthdayMonth > 0 {
		c.birthdayMonth, c.birthdayDay = rec.birthdayMonth, rec.birthdayDay
	}
	for name, v := range rec.custom {
		f := s.fieldByName[name]
		switch {
		case f == nil:
			// CC drops values for unknown custom fields without an error.
		case v != "":
			c.custom[f.id] = v
		case s.opts.EmptyStringClears:
			delete(c.custom, f.id)
		}
	}
	c.updatedAt = at
	var res upsertResult
	if c.permission == permUnsubscribed {
		res.unsubscribed = true
		return res
	}
	for _, id := range listIDs {
		switch {
		case slices.Contains(c.lists, id):
		case len(c.lists) >= maxListsPerRow:
			res.listsDropped++
		default:
			c.lists = append(c.lists, id)
		}
	}
	return res
}

// getContacts is GET /v3/contacts, in creation order with cursor paging.
func (s *Server) getContacts(w http.ResponseWriter, r *http.Request) {
	p, offset := pagedParams(r)
	q := p.q
	limit := p.limit(50, 500)
	includeCount := p.bool("include_count")
	include := p.enumList("include", "custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes")
	statuses := p.enumList("status", "all", "active", "deleted", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
	createdAfter, createdBefore := p.time("created_after"), p.time("created_before")
	updatedAfter, updatedBefore := p.time("updated_after"), p.time("updated_before")
	var lists []string
	if v := q.Get("lists"); v != "" && p.err == nil {
		for _, id := range strings.Split(v, ",") {
			id = strings.ToLower(strings.TrimSpace(id))
			if !isUUID(id) {
				writeError(w, http.StatusBadRequest, keyValidation, "lists must hold list_id values (UUIDs): "+id)
				return
			}
			lists = append(lists, id)
		}
		if len(lists) > maxListsFilter {
			writeError(w, http.StatusBadRequest, keyValidation, "lists accepts at most 25 list_id values.")
			return
		}
	}
	if p.err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, p.err.Error())
		return
	}
	email := strings.ToLower(strings.TrimSpace(q.Get("email")))

	s.mu.Lock()
	s.settleLocked(s.nowLocked())
	var matched []*contact
	for _, c := range s.contacts {
		switch {
		case email != "" && c.email != email,
			len(lists) > 0 && !slices.ContainsFunc(lists, func(id string) bool { return slices.Contains(c.lists, id) }),
			!statusMatches(c, statuses),
			!createdAfter.IsZero() && !c.createdAt.After(createdAfter),
			!createdBefore.IsZero() && !c.createdAt.Before(createdBefore),
			!updatedAfter.IsZero() && !c.updatedAt.After(updatedAfter),
			!updatedBefore.IsZero() && !c.updatedAt.Before(updatedBefore):
			continue
		}
		matched = append(matched, c)
	}
	start, end := window(offset, limit, len(matched))
	out := contactsJSON{Contacts: make([]contactJSON, 0, end-start)}
	for _, c := range matched[start:end] {
		out.Contacts = append(out.Contacts, s.contactJSONLocked(c, include))
	}
	if includeCount {
		n := len(matched)
		out.ContactsCount = &n
	}
	out.Links = nextLink("/v3/contacts", q, end, len(matched))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// statusMatches applies the status filter. With none given CC returns every
// contact that is not deleted; the sandbox deletes nothing.
func statusMatches(c *contact, statuses []string) bool {
	if len(statuses) == 0 {
		return true
	}
	for _, st := range statuses {
		switch st {
		case "all":
			return true
		case "active":
			if c.permission != permUnsubscribed {
				return true
			}
		case "deleted":
		default:
			if c.permission == st {
				return true
			}
		}
	}
	return false
}

// contactsJSON is CC's Contacts.
type contactsJSON struct {
	Contacts      []contactJSON `json:"contacts"`
	ContactsCount *int          `json:"contacts_count,omitempty"`
	Links         *pagingLinks  `json:"_links,omitempty"`
}

// contactJSON is CC's ContactResource. Sub-resources are pointers so that an
// included but empty one is sent as [] and one not asked for is left out.
type contactJSON struct {
	ContactID       string                `json:"contact_id"`
	EmailAddress    *emailAddressJSON     `json:"email_address,omitempty"`
	FirstName       string                `json:"first_name,omitempty"`
	LastName        string                `json:"last_name,omitempty"`
	JobTitle        string                `json:"job_title,omitempty"`
	CompanyName     string                `json:"company_name,omitempty"`
	BirthdayMonth   int                   `json:"birthday_month,omitempty"`
	BirthdayDay     int                   `json:"birthday_day,omitempty"`
	Anniversary     string                `json:"anniversary,omitempty"`
	CreateSource    string                `json:"create_source"`
	UpdateSource    string                `json:"update_source"`
	CreatedAt       string                `json:"created_at"`
	UpdatedAt       string                `json:"updated_at"`
	CustomFields    *[]contactCustomField `json:"custom_fields,omitempty"`
	PhoneNumbers    *[]phoneNumberJSON    `json:"phone_numbers,omitempty"`
	StreetAddresses *[]streetAddressJSON  `json:"street_addresses,omitempty"`
	ListMemberships *[]string             `json:"list_memberships,omitempty"`
	Taggings        *[]string             `json:"taggings,omitempty"`
	Notes           *[]map[string]string  `json:"notes,omitempty"`
	SMSChannel      map[string]string     `json:"sms_channel,omitempty"`
}

// emailAddressJSON is CC's EmailAddress.
type emailAddressJSON struct {
	Address          string `json:"address"`
	PermissionToSend string `json:"permission_to_send"`
	CreatedAt        string `json:"created_at"`
	UpdatedAt        string `json:"updated_at"`
	OptInSource      string `json:"opt_in_source,omitempty"`
	OptInDate        string `json:"opt_in_date,omitempty"`
	OptOutSource     string `json:"opt_out_source,omitempty"`
	OptOutDate       string `json:"opt_out_date,omitempty"`
	ConfirmStatus    string `json:"confirm_status"`
}

// contactCustomField is CC's ContactCustomField.
type contactCustomField struct {
	CustomFieldID string `json:"custom_field_id"`
	Value         string `json:"value"`
}

// phoneNumberJSON is CC's PhoneNumber.
type phoneNumberJSON struct {
	PhoneNumber string `json:"phone_number"`
	Kind        string `json:"kind"`
}

// streetAddressJSON is CC's StreetAddress.
type streetAddressJSON struct {
	Kind       string `json:"kind"`
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// contactJSONLocked renders c as a ContactResource with the sub-resources
// named in include.
func (s *Server) contactJSONLocked(c *contact, include []string) contactJSON {
	t := c.text
	out := contactJSON{
		ContactID:     c.id,
		FirstName:     t["first_name"],
		LastName:      t["last_name"],
		JobTitle:      t["job_title"],
		CompanyName:   t["company_name"],
		BirthdayMonth: c.birthdayMonth,
		BirthdayDay:   c.birthdayDay,
		Anniversary:   t["anniversary"],
		CreateSource:  c.optInSource,
		UpdateSource:  "Account",
		CreatedAt:     stamp(c.createdAt),
		UpdatedAt:     stamp(c.updatedAt),
	}
	if c.email != "" {
		ea := &emailAddressJSON{
			Address:          c.email,
			PermissionToSend: c.permission,
			CreatedAt:        stamp(c.createdAt),
			UpdatedAt:        stamp(c.updatedAt),
			OptInSource:      c.optInSource,
			ConfirmStatus:    "off",
		}
		if c.permission != permUnsubscribed {
			ea.OptInDate = stamp(c.optInDate)
		} else {
			ea.OptOutSource = "Contact"
			ea.OptOutDate = stamp(c.optOutDate)
		}
		out.EmailAddress = ea
	}
	if c.sms != "" {
		out.SMSChannel = map[string]string{"sms_address": c.sms, "dial_code": "1", "country_code": "US"}
	}
	for _, inc := range include {
		switch inc {
		case "list_memberships":
			l := append([]string{}, c.lists...)
			out.ListMemberships = &l
		case "custom_fields":
			cf := []contactCustomField{}
			for _, id := range slices.Sorted(maps.Keys(c.custom)) {
				cf = append(cf, contactCustomField{CustomFieldID: id, Value: c.custom[id]})
			}
			out.CustomFields = &cf
		case "phone_numbers":
			ph := phonesOf(t)
			out.PhoneNumbers = &ph
		case "street_addresses":
			ad := addressesOf(t)
			out.StreetAddresses = &ad
		case "taggings":
			out.Taggings = &[]string{}
		case "notes":
			out.Notes = &[]map[string]string{}
		}
	}
	return out
}

// phonesOf renders the import's phone keys as PhoneNumber sub-resources; CC
// keeps at most three. The bare "phone" key is kind other.
func phonesOf(t map[string]string) []phoneNumberJSON {
	out := []phoneNumberJSON{}
	for _, p := range []struct{ key, alt, kind string }{
		{"home_phone", "", "home"},
		{"work_phone", "", "work"},
		{"mobile_phone", "", "mobile"},
		{"other_phone", "phone", "other"},
	} {
		v := cmp.Or(t[p.key], t[p.alt])
		if v != "" && len(out) < 3 {
			out = append(out, phoneNumberJSON{PhoneNumber: v, Kind: p.kind})
		}
	}
	return out
}

// addressesOf renders the import's address keys as StreetAddress
// sub-resources. The unprefixed keys are the primary address, kind home, and
// street2 is appended to street.
func addressesOf(t map[string]string) []streetAddressJSON {
	out := []streetAddressJSON{}
	for _, kind := range []string{"home", "work", "other"} {
		get := func(k string) string {
			v := t[kind+"_"+k]
			if v == "" && kind == "home" {
				v = t[k]
			}
			return v
		}
		a := streetAddressJSON{
			Kind:       kind,
			Street:     strings.TrimSpace(get("street") + " " + get("street2")),
			City:       get("city"),
			State:      get("state"),
			PostalCode: get("zip"),
			Country:    get("country"),
		}
		if a.Street != "" || a.City != "" || a.State != "" || a.PostalCode != "" || a.Country != "" {
			out = append(out, a)
		}
	}
	return out
}

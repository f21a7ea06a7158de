// Package routing decides where each HubSpot enrollment goes in Constant
// Contact (CC): the CC lists it is imported onto, and the CC contact
// fields sent for it. Both come from one YAML rules file, named by
// HS2CC_ROUTES and read by the caller, or from Default when no file is
// configured.
//
// A rules file looks like this:
//
//	default_lists: ["New Agents"]
//	create_missing_lists: true
//	routes:
//	  - when: {country: ["US", "Canada"]}
//	    lists: ["Agents - North America"]
//	  - when: {property: agent_tier, equals: gold}
//	    lists: ["Gold Agents"]
//	  - when: {property: agent_tier, in: [gold, platinum]}
//	    lists: ["Premium"]
//	    exclusive: true
//	fields:
//	  first_name: firstname
//	  "cf:enrolled_at": "@enrolled_at"
//	  "cf:agency_id": agency_id
//
// Routes: a route's when holds one or more conditions, all of which must
// be true. country matches the contact's country ignoring case, spacing
// and spelling, so "US", "usa" and "United States" are the same country.
// property with equals (one value) or in (several) compares a HubSpot
// property's value, trimmed and ignoring case. exists: <property> is true
// when the property has a non-blank value. An enrollment goes on the lists
// of every route it matches, plus default_lists unless one of those routes
// is exclusive; with no match it goes on default_lists alone, and with no
// default_lists it is rejected (ErrNoRoute). Lists and list names may be
// written as one string or a list of strings.
//
// Fields map a CC field (first_name, last_name, job_title, company_name,
// phone, home_phone, work_phone, mobile_phone, street, street2, city,
// state, zip, country, birthday_month, birthday_day, anniversary, or
// cf:<custom field name>) to a HubSpot property, or to one of the
// enrollment's own values: @enrolled_at (the enrollment date,
// YYYY-MM-DD), @email, @first_name, @last_name, @country. Email is not
// mappable; it is always the enrollment's email. A fields section replaces
// the default mapping as a whole; the default is
//
//	first_name: firstname
//	last_name: lastname
//	job_title: jobtitle
//	company_name: company
//	phone: phone
//	mobile_phone: mobilephone
//	street: address
//	city: city
//	state: state
//	zip: zip
//	country: country
//	"cf:enrolled_at": "@enrolled_at"
//	"cf:agency_id": agency_id
//
// (YAML needs the quotes around a value that starts with @.)
//
// Whatever the mapping, first_name, last_name and country fall back to the
// values hs2cc parsed from the webhook when their property is blank.
//
// Parse refuses, listing every problem with its line, a file with unknown
// keys, a route without lists or without a condition, equals together with
// in, an unknown CC field or source, more than 25 cf: fields, or lists that
// could add up to more than 50 for one contact (CC's limit per import).
// Contact never truncates: a value over one of CC's limits rejects the
// enrollment with a reason that names the field.
package routing

package loadgen

import (
	"math/rand/v2"
	"strconv"
	"time"
)

var (
	simFirst = []string{"Ann", "Yllä", "Søren", "José", "Zoë", "Łukasz", "Chloé", "Björn", "Aiko", "Nguyễn", "Olu", "Maëlle", "Иван", "佳怡"}
	simLast  = []string{"Øster", "García", "Müller", "O'Brien", "Dubois", "Kowalski", "Tanaka", "Smith", "Nakamura", "Ångström", "Okafor"}
	simCtry  = []string{"US", "United States", "CA", "Canada", "GB", "DE", "FR", "MX", "JP", "BR"}
)

// ContactBody builds a workflow body in HubSpot's "include all properties"
// contact-profile shape, with value histories, identity profiles and
// non-ASCII names, so that parsing and signing see what production sees.
// The same portal, vid and i always give the same body.
func ContactBody(portal, vid int64, i int) []byte {
	return AppendContactBody(nil, portal, vid, i)
}

// AppendContactBody appends ContactBody's JSON to b. It writes the JSON
// directly rather than marshalling maps, because simulate runs on the
// machine it measures and a map marshal costs more CPU than the bridge
// spends parsing the body. Every string comes from the fixed lists above or
// is ASCII, so strconv's quoting is valid JSON for them.
func AppendContactBody(b []byte, portal, vid int64, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(vid), 7))
	first, last := simFirst[r.IntN(len(simFirst))], simLast[r.IntN(len(simLast))]
	country := simCtry[r.IntN(len(simCtry))]
	company := "Agency " + strconv.Itoa(r.IntN(500))
	tier := []string{"gold", "silver", "bronze"}[r.IntN(3)]
	email := "agent" + strconv.FormatInt(vid, 10) + "@example-travel.com"
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).UnixMilli()
	num := func(n int64) { b = strconv.AppendInt(b, n, 10) }
	prop := func(name, v string) {
		b = strconv.AppendQuote(b, name)
		b = append(b, `:{"value":`...)
		b = strconv.AppendQuote(b, v)
		b = append(b, `,"versions":[{"selected":false,"source-id":"form-1","source-label":null,"source-type":"FORM","timestamp":`...)
		num(created)
		b = append(b, `,"updated-by-user-id":null,"value":`...)
		b = strconv.AppendQuote(b, v)
		b = append(b, `}]}`...)
	}
	b = append(b, `{"canonical-vid":`...)
	num(vid)
	b = append(b, `,"form-submissions":[],"identity-profiles":[{"deleted-changed-timestamp":0,"identities":[{"is-primary":true,"timestamp":`...)
	num(created)
	b = append(b, `,"type":"EMAIL","value":`...)
	b = strconv.AppendQuote(b, email)
	b = append(b, `}],"saved-at-timestamp":`...)
	num(created)
	b = append(b, `,"vid":`...)
	num(vid)
	b = append(b, `}],"is-contact":true,"list-memberships":[],"merge-audits":[],"merged-vids":[],"portal-id":`...)
	num(portal)
	b = append(b, `,"properties":{`...)
	for k, p := range [][2]string{{"agent_tier", tier}, {"company", company}, {"country", country},
		{"createdate", strconv.FormatInt(created, 10)}, {"email", email}, {"firstname", first},
		{"lastmodifieddate", strconv.FormatInt(created+1000, 10)}, {"lastname", last}} {
		if k > 0 {
			b = append(b, ',')
		}
		prop(p[0], p[1])
	}
	b = append(b, `},"vid":`...)
	num(vid)
	return append(b, '}')
}

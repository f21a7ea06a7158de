package hubspot

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The reference parsers below read bodies the plain way, decoding them with
// encoding/json into map[string]any. ParseWorkflow and ParseWebhooksAPI walk
// the bytes instead, which is several times faster, and must read every
// body exactly as the reference does: the same values from duplicate
// names, escapes and odd types, and the same errors. FuzzReference holds
// them to it.

func refParseWorkflow(body []byte, names FieldNames) (Enrollment, error) {
	switch c, ok := refFirstByte(body); {
	case !ok:
		return Enrollment{}, fmt.Errorf("parse workflow: empty body: %w", ErrMalformed)
	case c == '{':
	case c == '[':
		return Enrollment{}, fmt.Errorf("parse workflow: %w", ErrWebhooksAPI)
	default:
		return Enrollment{}, fmt.Errorf("parse workflow: body is not a JSON object: %w", ErrMalformed)
	}
	top, err := refDecodeObject(body)
	if err != nil {
		return Enrollment{}, fmt.Errorf("parse workflow: %w: %w", ErrMalformed, err)
	}

	names = names.withDefaults()
	e := Enrollment{PortalID: int64(refFirstID(top, "portal-id", "portalId", "portal_id", "hs_portal_id"))}
	props, profile := top["properties"].(map[string]any)
	if profile {
		e.Properties = make(map[string]string, len(props))
		for name, p := range props {
			v := p
			if obj, ok := p.(map[string]any); ok {
				v = obj["value"]
			}
			if s, ok := refScalarText(v); ok {
				e.Properties[name] = s
			}
		}
		e.ObjectID = idText(refFirstID(top, "canonical-vid", "vid", "id"))
		if e.ObjectID == "" {
			e.ObjectID = idText(parseID(e.Properties["hs_object_id"]))
		}
		for name, p := range props {
			if volatileProperty(name) {
				continue
			}
			obj, _ := p.(map[string]any)
			versions, _ := obj["versions"].([]any)
			for _, v := range versions {
				ver, _ := v.(map[string]any)
				if t := refJSONMillis(ver["timestamp"]); t.After(e.SourceUpdatedAt) {
					e.SourceUpdatedAt = t
				}
			}
		}
	} else {
		e.Properties = make(map[string]string, len(top))
		for name, v := range top {
			if s, ok := refScalarText(v); ok {
				e.Properties[name] = s
			}
		}
		e.ObjectID = idText(refFirstID(top, "hs_object_id", "objectId", "vid"))
	}
	if e.SourceUpdatedAt.IsZero() {
		e.SourceUpdatedAt = lastModified(e.Properties)
	}
	e.FirstName = strings.TrimSpace(e.Properties[names.FirstName])
	e.LastName = strings.TrimSpace(e.Properties[names.LastName])
	e.Country = strings.TrimSpace(e.Properties[names.Country])
	e.EnrolledAt = parseTime(e.Properties[names.EnrolledAt])
	e.Email = strings.TrimSpace(e.Properties[names.Email])
	if e.Email == "" && profile {
		e.Email = strings.TrimSpace(refIdentityEmail(top))
	}
	if err := checkEmail(e.Email, names.Email); err != nil {
		return e, fmt.Errorf("parse workflow: %w", err)
	}
	return e, nil
}

func refFirstByte(b []byte) (byte, bool) {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c, true
		}
	}
	return 0, false
}

func refDecodeObject(body []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level object")
	}
	return top, nil
}

func refScalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func refFirstID(top map[string]any, keys ...string) uint64 {
	for _, k := range keys {
		var id uint64
		switch v := top[k].(type) {
		case json.Number:
			id = parseID(string(v))
		case string:
			id = parseID(v)
		}
		if id > 0 {
			return id
		}
	}
	return 0
}

func refIdentityEmail(top map[string]any) string {
	var first string
	profiles, _ := top["identity-profiles"].([]any)
	for _, p := range profiles {
		profile, _ := p.(map[string]any)
		ids, _ := profile["identities"].([]any)
		for _, id := range ids {
			ident, _ := id.(map[string]any)
			value, _ := ident["value"].(string)
			if ident["type"] != "EMAIL" || strings.TrimSpace(value) == "" {
				continue
			}
			if ident["is-primary"] == true {
				return value
			}
			if first == "" {
				first = value
			}
		}
	}
	return first
}

func refJSONMillis(v any) time.Time {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return time.Time{}
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return millisTime(ms)
}

func refParseWebhooksAPI(body []byte) ([]Event, error) {
	if c, ok := refFirstByte(body); !ok || c != '[' {
		return nil, fmt.Errorf("parse webhooks api: body is not a JSON array: %w", ErrMalformed)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	var raws []json.RawMessage
	if err := d.Decode(&raws); err != nil {
		return nil, fmt.Errorf("parse webhooks api: %w: %w", ErrMalformed, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("parse webhooks api: %w: data after the top-level array", ErrMalformed)
	}
	events := make([]Event, 0, len(raws))
	for i, raw := range raws {
		if c, _ := refFirstByte(raw); c != '{' {
			return nil, fmt.Errorf("parse webhooks api: event %d is not a JSON object: %w", i, ErrMalformed)
		}
		obj, err := refDecodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("parse webhooks api: event %d: %w: %w", i, ErrMalformed, err)
		}
		text := func(key string) string {
			s, _ := refScalarText(obj[key])
			return s
		}
		ev := Event{
			EventID:          int64(refFirstID(obj, "eventId")),
			SubscriptionID:   int64(refFirstID(obj, "subscriptionId")),
			PortalID:         int64(refFirstID(obj, "portalId")),
			AppID:            int64(refFirstID(obj, "appId")),
			ObjectID:         idText(refFirstID(obj, "objectId")),
			ObjectTypeID:     text("objectTypeId"),
			SubscriptionType: cmp.Or(text("subscriptionType"), text("eventType")),
			PropertyName:     text("propertyName"),
			ChangeSource:     text("changeSource"),
			ChangeFlag:       text("changeFlag"),
			SourceID:         text("sourceId"),
			OccurredAt:       refJSONMillis(obj["occurredAt"]),
			Raw:              raw,
		}
		ev.PropertyValue, ev.HasPropertyValue = refScalarText(obj["propertyValue"])
		if n, ok := obj["attemptNumber"].(json.Number); ok {
			if a, err := strconv.ParseUint(n.String(), 10, 31); err == nil {
				ev.AttemptNumber = int(a)
			}
		}
		events = append(events, ev)
	}
	return events, nil
}

var referenceSeeds = []string{
	"", " ", "null", "[]", "{}", " {} ", "{}\n", `{"email":"a@b.com"}`, `{"properties":[]}`, `{"vid":-1,"properties":{"email":1}}`,
	`{"identity-profiles":[{"identities":[{"type":"EMAIL","value":"a@b.com"}]}],"properties":{}}`,
	`{"properties":{"email":{"value":"a@b.com"}},"properties":"x"}`,
	`{"properties":"x","properties":{"email":{"value":"a@b.com"}}}`,
	`{"email":"a@b.com","email":null}`, `{"email":null,"email":"a@b.com"}`, `{"email":{},"email":"a@b.com","email":[1]}`,
	`{"em\u0061il":"a@b.com","\u0076id":"7"}`, `{"prop\u0065rties":{"email":{"v\u0061lue":"a@b.com","versions":[{"timest\u0061mp":5}]}}}`,
	"{\"email\":\"a@b.com\",\"x\xff\":\"y\xfe\"}", "{\"email\":\"a@b.com\",\"n\":\"\\ud800\"}",
	`{"properties":{"email":{"value":"a@b.com","versions":[{"timestamp":1700000000001}]},"email":{"value":"c@d.com","versions":[{"timestamp":1700000000000}]}}}`,
	`{"properties":{"x":{"versions":[{"timestamp":1700000000009}]},"x":{"versions":[]},"email":"a@b.com"}}`,
	`{"properties":{"x":null,"x":"1","email":"a@b.com"}}`,
	`{"properties":{"x":"1","x":null,"email":"a@b.com","lastmodifieddate":"1700000000005"}}`,
	`{"properties":{"email":{"value":"a@b.com","value":null}}}`,
	`{"properties":{"email":{"value":"a@b.com","versions":[{"timestamp":" 1700000000001 "},{"timestamp":"17e11"},1,null,{"timestamp":1.7e12},{"timestamp":-4},{"timestamp":99999999999999}]}}}`,
	`{"vid":"  12 ","portal-id":"0","portalId":"x","portal_id":3.0,"hs_portal_id":"9","properties":{"email":"a@b.com"}}`,
	`{"vid":0,"canonical-vid":-3,"id":"0012","properties":{"email":"a@b.com"}}`,
	`{"properties":{"hs_object_id":{"value":" 0042 "},"email":{"value":"a@b.com"}}}`,
	`{"properties":{"hs_object_id":42,"email":{"value":"a@b.com"}}}`,
	`{"properties":{},"identity-profiles":[1,{"identities":{}},{"identities":[null,{"type":"EMAIL","value":" "},{"type":"EM\u0041IL","value":"x@y.z","is-primary":"true"},{"type":"EMAIL","value":"p@q.r","is-primary":true}]}]}`,
	`{"properties":{},"identity-profiles":[{"identities":[{"type":"EMAIL","value":5},{"type":"EMAIL","value":"f@g.h"}],"identities":[]}]}`,
	`{"hs_object_id":"1","objectId":"2","vid":3,"email":"A@B.COM","createdate":"2024-02-30","lastmodifieddate":"2024-03-01T00:00:00Z","hs_lastmodifieddate":1700000000000}`,
	`{"email":"a@b.com","createdate":"+1700000000000","lastmodifieddate":" 1700000000000"}`,
	`{"email":"a.b+c@d-e.f"}`, `{"email":"a..b@c.d"}`, `{"email":".a@b.c"}`, `{"email":"a.@b.c"}`, `{"email":"a@b..c"}`, `{"email":"a@b."}`,
	`{"email":"a@[1.2.3.4]"}`, `{"email":"\"q\"@b.c"}`, `{"email":"ä@b.c"}`, `{"email":"a@b@c"}`, `{"email":"a b@c.d"}`, `{"email":"a@b.c "}`,
	`{"email":"!#$%&'*+-/=?^_` + "`" + `{|}~@x.y"}`, `{"email":"a(b)@c.d"}`, `{"email":"a@b.c(x)"}`, `{"email":"a\u0000@b.c"}`,
	`{"email":"a@b.com"} {}`, `{"email":"a@b.com"}}`, `{"email":"a@b`, `{"a":1,}`, `{'a':1}`, `{"a":01}`, `{"a":1e}`, "{\"a\":\"\x01\"}",
	`[{"eventId":1}]`, "\r\n [ ]",
	`{"a":{"b":[{"c":"}]\"{["}]},"email":"a@b.com","z":-0.5e+3,"t":true,"f":false}`,
}

// checkReference fails unless ParseWorkflow and ParseWebhooksAPI read body
// exactly as the reference parsers do.
func checkReference(t *testing.T, body []byte) {
	t.Helper()
	for _, names := range []FieldNames{DefaultFieldNames(), {Email: "work_email", EnrolledAt: "enrolled_at", Country: "x"}} {
		got, gerr := ParseWorkflow(body, names)
		want, werr := refParseWorkflow(body, names)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("ParseWorkflow(%q): err %v, reference %v", body, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseWorkflow(%q):\n got       %#v\n reference %#v", body, got, want)
		}
	}

	got, gerr := ParseWebhooksAPI(body)
	want, werr := refParseWebhooksAPI(body)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("ParseWebhooksAPI(%q): err %v, reference %v", body, gerr, werr)
	}
	if (got == nil) != (want == nil) || len(got) != len(want) {
		t.Fatalf("ParseWebhooksAPI(%q): %d events, reference %d", body, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Raw, w.Raw) {
			t.Fatalf("ParseWebhooksAPI(%q): event %d Raw %q, reference %q", body, i, g.Raw, w.Raw)
		}
		g.Raw, w.Raw = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("ParseWebhooksAPI(%q): event %d\n got       %#v\n reference %#v", body, i, g, w)
		}
	}
}

func referenceCorpus(tb testing.TB) [][]byte {
	tb.Helper()
	out := [][]byte{readProfile(tb), []byte(docsEvent), []byte(flatBody)}
	for _, v := range loadVectors(tb) {
		out = append(out, []byte(v.Body))
	}
	for _, s := range referenceSeeds {
		out = append(out, []byte(s), []byte("["+s+"]"), []byte("["+s+",\n"+s+"]"))
	}
	return out
}

func TestReference(t *testing.T) {
	for _, body := range referenceCorpus(t) {
		checkReference(t, body)
		// Every prefix of a body is malformed in its own way.
		for i := range body {
			checkReference(t, body[:i])
		}
	}
}

func FuzzReference(f *testing.F) {
	for _, body := range referenceCorpus(f) {
		f.Add(body)
	}
	f.Fuzz(checkReference)
}

package hubspot

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"time"
)

// Event is one event of a Webhooks API (app subscription) delivery. Every
// field is optional in what HubSpot sends; a missing one is left zero.
type Event struct {
	// EventID is HubSpot's id of the event, 0 when absent. HubSpot does not
	// guarantee that it is unique; see Key.
	EventID        int64
	SubscriptionID int64
	PortalID       int64
	AppID          int64
	// ObjectID is the created, changed or deleted object's id as canonical
	// decimal text, the way Enrollment.ObjectID holds it; "" when absent.
	ObjectID string
	// ObjectTypeID is set by generic subscriptions ("0-1" is a contact).
	ObjectTypeID string
	// SubscriptionType is subscriptionType, or eventType (the name HubSpot's
	// docs use) when that is absent, e.g. "contact.propertyChange".
	SubscriptionType string
	PropertyName     string
	// PropertyValue is the property's new value as text; HasPropertyValue
	// tells "" (the property was cleared) from no value at all.
	PropertyValue    string
	HasPropertyValue bool
	ChangeSource     string
	ChangeFlag       string
	SourceID         string
	// OccurredAt is when the change happened in HubSpot (UTC), the time to
	// order events by; zero when absent or unreadable.
	OccurredAt time.Time
	// AttemptNumber counts HubSpot's delivery attempts of this event from 0.
	AttemptNumber int
	// Raw is the event's JSON exactly as it appeared in the array.
	Raw json.RawMessage
}

// ParseWebhooksAPI reads the body of a Webhooks API delivery: a JSON array of
// event objects. Anything else, including an array that holds something
// other than objects, is ErrMalformed. An empty array is no error and yields
// no events.
func ParseWebhooksAPI(body []byte) ([]Event, error) {
	if c, ok := firstByte(body); !ok || c != '[' {
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
		if c, _ := firstByte(raw); c != '{' {
			return nil, fmt.Errorf("parse webhooks api: event %d is not a JSON object: %w", i, ErrMalformed)
		}
		obj, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("parse webhooks api: event %d: %w: %w", i, ErrMalformed, err)
		}
		events = append(events, eventFrom(obj, raw))
	}
	return events, nil
}

func eventFrom(obj map[string]any, raw json.RawMessage) Event {
	text := func(key string) string {
		s, _ := scalarText(obj[key])
		return s
	}
	ev := Event{
		EventID:          int64(firstID(obj, "eventId")),
		SubscriptionID:   int64(firstID(obj, "subscriptionId")),
		PortalID:         int64(firstID(obj, "portalId")),
		AppID:            int64(firstID(obj, "appId")),
		ObjectID:         idText(firstID(obj, "objectId")),
		ObjectTypeID:     text("objectTypeId"),
		SubscriptionType: cmp.Or(text("subscriptionType"), text("eventType")),
		PropertyName:     text("propertyName"),
		ChangeSource:     text("changeSource"),
		ChangeFlag:       text("changeFlag"),
		SourceID:         text("sourceId"),
		OccurredAt:       jsonMillis(obj["occurredAt"]),
		Raw:              raw,
	}
	ev.PropertyValue, ev.HasPropertyValue = scalarText(obj["propertyValue"])
	if n, ok := obj["attemptNumber"].(json.Number); ok {
		if a, err := strconv.ParseUint(n.String(), 10, 31); err == nil {
			ev.AttemptNumber = int(a)
		}
	}
	return ev
}

// IsContactPropertyChange reports whether the event says that a property of
// a contact changed, from a contact subscription or a generic one.
func (ev Event) IsContactPropertyChange() bool {
	switch ev.SubscriptionType {
	case "contact.propertyChange":
		return true
	case "object.propertyChange":
		return ev.ObjectTypeID == "0-1"
	}
	return false
}

// Key identifies the event for deduplication, or is "" when the event has no
// id. HubSpot retries a delivery with the same events and a higher
// attemptNumber; since it does not promise that eventId is unique, the key
// also covers what the event says happened, so that two different events
// that happen to share an id are never taken for one.
func (ev Event) Key() string {
	if ev.EventID == 0 {
		return ""
	}
	var occurred string
	if !ev.OccurredAt.IsZero() {
		occurred = strconv.FormatInt(ev.OccurredAt.UnixMilli(), 10)
	}
	value := "-"
	if ev.HasPropertyValue {
		value = "=" + ev.PropertyValue
	}
	b := make([]byte, 0, 256)
	for _, s := range []string{
		"hs2cc-event-v1",
		strconv.FormatInt(ev.PortalID, 10), strconv.FormatInt(ev.AppID, 10),
		strconv.FormatInt(ev.SubscriptionID, 10), strconv.FormatInt(ev.EventID, 10),
		ev.SubscriptionType, ev.ObjectTypeID, ev.ObjectID, occurred, ev.PropertyName, value,
	} {
		b = appendField(b, s)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SetProperty applies a property's new value, as a Webhooks API
// propertyChange reports it, to an enrollment built from a workflow body:
// the property itself and every field that names maps to it. A value that
// would leave the enrollment without a usable email is refused with
// ErrNoEmail and changes nothing. Properties is replaced, not modified, so a
// map shared with the caller keeps its values.
func (e *Enrollment) SetProperty(name, value string, names FieldNames) error {
	names = names.withDefaults()
	if name == names.Email {
		if err := checkEmail(strings.TrimSpace(value), name); err != nil {
			return fmt.Errorf("set property: %w", err)
		}
		e.Email = strings.TrimSpace(value)
	}
	if name == names.FirstName {
		e.FirstName = strings.TrimSpace(value)
	}
	if name == names.LastName {
		e.LastName = strings.TrimSpace(value)
	}
	if name == names.Country {
		e.Country = strings.TrimSpace(value)
	}
	if name == names.EnrolledAt {
		e.EnrolledAt = parseTime(value)
	}
	props := make(map[string]string, len(e.Properties)+1)
	maps.Copy(props, e.Properties)
	props[name] = value
	e.Properties = props
	return nil
}

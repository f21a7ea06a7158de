package hubspot

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	start := skipSpace(body, 0)
	if start == len(body) || body[start] != '[' {
		return nil, fmt.Errorf("parse webhooks api: body is not a JSON array: %w", ErrMalformed)
	}
	if !json.Valid(body) {
		return nil, arraySyntaxError(body)
	}
	arr := body[start:]
	n := 0
	for it := elements(arr, 0); it.next(); n++ {
		if it.peek() != '{' {
			return nil, fmt.Errorf("parse webhooks api: event %d is not a JSON object: %w", n, ErrMalformed)
		}
	}
	if n == 0 {
		return []Event{}, nil
	}
	// One copy of the array backs every event's Raw, so that the events do
	// not alias the caller's buffer, at one allocation instead of one per
	// event. Each Raw is capped at its own end, so appending to one cannot
	// overwrite the next.
	arr = bytes.Clone(arr)
	events := make([]Event, 0, n)
	for it := elements(arr, 0); it.next(); {
		raw := it.value()
		events = append(events, eventFrom(raw[:len(raw):len(raw)]))
	}
	return events, nil
}

// arraySyntaxError returns the error for a body that starts like an array
// but is not valid JSON. Its text is stored as the reason of the rejected
// delivery, so it comes from json.Decoder as it always has rather than from
// json.Valid, which gives none; only malformed bodies take this path.
func arraySyntaxError(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	var raws []json.RawMessage
	if err := d.Decode(&raws); err != nil {
		return fmt.Errorf("parse webhooks api: %w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("parse webhooks api: %w: data after the top-level array", ErrMalformed)
}

// eventFrom reads the event object raw, which becomes the event's Raw.
func eventFrom(raw []byte) Event {
	// The raw value of the last occurrence of each member read, nil when
	// absent.
	var eventID, subscriptionID, portalID, appID, objectID, objectTypeID, subscriptionType, eventType,
		propertyName, propertyValue, changeSource, changeFlag, sourceID, occurredAt, attemptNumber []byte
	for it := members(raw, 0); it.next(); {
		switch string(memberName(it.key)) {
		case "eventId":
			eventID = it.value()
		case "subscriptionId":
			subscriptionID = it.value()
		case "portalId":
			portalID = it.value()
		case "appId":
			appID = it.value()
		case "objectId":
			objectID = it.value()
		case "objectTypeId":
			objectTypeID = it.value()
		case "subscriptionType":
			subscriptionType = it.value()
		case "eventType":
			eventType = it.value()
		case "propertyName":
			propertyName = it.value()
		case "propertyValue":
			propertyValue = it.value()
		case "changeSource":
			changeSource = it.value()
		case "changeFlag":
			changeFlag = it.value()
		case "sourceId":
			sourceID = it.value()
		case "occurredAt":
			occurredAt = it.value()
		case "attemptNumber":
			attemptNumber = it.value()
		}
	}
	text := func(v []byte) string {
		s, _ := scalarText(v)
		return s
	}
	ev := Event{
		EventID:          int64(jsonID(eventID)),
		SubscriptionID:   int64(jsonID(subscriptionID)),
		PortalID:         int64(jsonID(portalID)),
		AppID:            int64(jsonID(appID)),
		ObjectID:         idText(jsonID(objectID)),
		ObjectTypeID:     text(objectTypeID),
		SubscriptionType: cmp.Or(text(subscriptionType), text(eventType)),
		PropertyName:     text(propertyName),
		ChangeSource:     text(changeSource),
		ChangeFlag:       text(changeFlag),
		SourceID:         text(sourceID),
		OccurredAt:       jsonMillis(occurredAt),
		Raw:              raw,
	}
	ev.PropertyValue, ev.HasPropertyValue = scalarText(propertyValue)
	if isNumber(attemptNumber) {
		if a, err := strconv.ParseUint(string(attemptNumber), 10, 31); err == nil {
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

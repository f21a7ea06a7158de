package hubspot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors returned, wrapped with detail, by ParseWorkflow.
var (
	// ErrMalformed means the body is not a JSON object that can be read.
	ErrMalformed = errors.New("malformed workflow body")
	// ErrNoEmail means the body parsed but holds no usable email address,
	// so the enrollment cannot be imported; the wrapping error says whether
	// it was missing or invalid.
	ErrNoEmail = errors.New("no usable email")
	// ErrWebhooksAPI means the body is a JSON array, which is how the
	// Webhooks API (app subscriptions) delivers events, not a workflow.
	ErrWebhooksAPI = errors.New("webhooks api delivery, not a workflow body")
)

// ParseWorkflow reads the body of a workflow "Send a webhook" request.
//
// A body with a "properties" object is the legacy contact profile that
// "Include all properties" sends (properties.<name>.value, vid, portal-id);
// any other object is a customised flat body whose scalar values are the
// properties. On ErrNoEmail the returned Enrollment is filled as far as the
// body allowed, so the caller can record the rejection against its object.
func ParseWorkflow(body []byte, names FieldNames) (Enrollment, error) {
	start := skipSpace(body, 0)
	switch {
	case start == len(body):
		return Enrollment{}, fmt.Errorf("parse workflow: empty body: %w", ErrMalformed)
	case body[start] == '{':
	case body[start] == '[':
		return Enrollment{}, fmt.Errorf("parse workflow: %w", ErrWebhooksAPI)
	default:
		return Enrollment{}, fmt.Errorf("parse workflow: body is not a JSON object: %w", ErrMalformed)
	}
	if !json.Valid(body) {
		return Enrollment{}, fmt.Errorf("parse workflow: %w: %w", ErrMalformed, objectSyntaxError(body))
	}
	obj := body[start:]
	top := readWorkflowTop(obj)

	names = names.withDefaults()
	e := Enrollment{PortalID: int64(firstID(top.portalID[:]...))}
	profile := isObject(top.properties)
	if profile {
		e.Properties, e.SourceUpdatedAt = top.props, top.newest
		e.ObjectID = idText(firstID(top.canonicalVID, top.vid, top.id))
		if e.ObjectID == "" {
			e.ObjectID = idText(parseID(e.Properties["hs_object_id"]))
		}
	} else {
		e.Properties = flatProperties(obj)
		e.ObjectID = idText(firstID(top.hsObjectID, top.objectID, top.vid))
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
		e.Email = strings.TrimSpace(identityEmail(top.identityProfiles))
	}
	if err := checkEmail(e.Email, names.Email); err != nil {
		return e, fmt.Errorf("parse workflow: %w", err)
	}
	return e, nil
}

// objectSyntaxError explains why a body that starts like an object is not
// valid JSON. The explanation is stored as the reason of the rejected
// delivery, and operators and tests match its text, so it comes from
// json.Decoder as it always has rather than from json.Valid, which gives
// none; only malformed bodies take this path.
func objectSyntaxError(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil {
		return err
	}
	return errors.New("data after the top-level object")
}

// workflowTop holds what ParseWorkflow reads from the top-level object by
// name: raw values, each from the member's last occurrence as encoding/json
// would keep it and nil when absent, and the profile's properties.
type workflowTop struct {
	properties, identityProfiles []byte
	// portalID holds portal-id, portalId, portal_id and hs_portal_id, in
	// the order they are preferred.
	portalID                                    [4][]byte
	canonicalVID, vid, id, hsObjectID, objectID []byte

	// props and newest are read from properties when it is an object.
	props  map[string]string
	newest time.Time
}

// readWorkflowTop walks the top-level object obj once, reading the
// properties of a profile on the way instead of skipping over them first.
func readWorkflowTop(obj []byte) workflowTop {
	var top workflowTop
	for it := members(obj, 0); it.next(); {
		switch string(memberName(it.key)) {
		case "properties":
			start := it.i
			if it.peek() == '{' {
				var end int
				top.props, top.newest, end = profileProperties(obj, start)
				it.consumed(end)
			} else {
				it.value()
			}
			top.properties = obj[start:it.i]
		case "identity-profiles":
			top.identityProfiles = it.value()
		case "portal-id":
			top.portalID[0] = it.value()
		case "portalId":
			top.portalID[1] = it.value()
		case "portal_id":
			top.portalID[2] = it.value()
		case "hs_portal_id":
			top.portalID[3] = it.value()
		case "canonical-vid":
			top.canonicalVID = it.value()
		case "vid":
			top.vid = it.value()
		case "id":
			top.id = it.value()
		case "hs_object_id":
			top.hsObjectID = it.value()
		case "objectId":
			top.objectID = it.value()
		}
	}
	return top
}

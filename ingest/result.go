package ingest

// Code names what became of a delivery. The webhook answers each with the
// status of one table (handlers.Status); its text is the code of the JSON
// error body of a refusal.
type Code string

// Codes of Result and Error.
const (
	CodeAccepted  Code = "accepted"        // a new enrollment version, queued for import
	CodeDuplicate Code = "duplicate"       // the same content as stored: nothing new
	CodeStale     Code = "stale"           // older than the stored data: recorded, nothing changed
	CodeEvents    Code = "events"          // a Webhooks API batch, stored event by event
	CodeMalformed Code = "malformed_body"  // not a body HubSpot sends; stored
	CodeNoEmail   Code = "no_usable_email" // a contact without a usable email; stored
	CodeNoRoute   Code = "no_route"        // the rules send the contact nowhere; stored
	// CodeFieldTooLong is a value too long for the column that keeps it;
	// stored as rejected, with the field.
	CodeFieldTooLong Code = "field_too_long"
	// CodeUnavailable is a fault of ours (the store failing); nothing is
	// known to be stored, and the sender must try again.
	CodeUnavailable Code = "unavailable"
)

// Result is what became of one verified delivery.
type Result struct {
	Code Code
	// Verdict is the stored delivery's verdict (store.Verdict*), and
	// DeliveryID its id; for a Webhooks API batch, those of its last event.
	Verdict    string
	DeliveryID int64
	// EnrollmentID and Version name the enrollment version stored or found
	// unchanged; zero when the delivery made none.
	EnrollmentID int64
	Version      int
	// Message says why a delivery was refused.
	Message string
	// Events counts a Webhooks API batch: its events, the versions they
	// made, and the deliveries stored for them.
	Events, Updated, Stored int
}

// Refused reports a delivery that was stored but cannot be imported as it
// is: a malformed body, no usable email, no route, a field too long.
func (r Result) Refused() bool {
	return r.Code == CodeMalformed || r.Code == CodeNoEmail || r.Code == CodeNoRoute || r.Code == CodeFieldTooLong
}

// Error is a fault of ours while ingesting: Code is CodeUnavailable, and
// Message what the sender is told; Err, the cause, is for the log only.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func unavailable(message string, cause error) *Error {
	return &Error{Code: CodeUnavailable, Message: message, Err: cause}
}

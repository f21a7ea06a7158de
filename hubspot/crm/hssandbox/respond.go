package hssandbox

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// errorBody is HubSpot's error shape.
type errorBody struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId"`
	Category      string              `json:"category"`
	PolicyName    string              `json:"policyName,omitempty"`
	Errors        []errorDetail       `json:"errors,omitempty"`
	Context       map[string][]string `json:"context,omitempty"`
}

// errorDetail is one entry of an errors array.
type errorDetail struct {
	Status   string              `json:"status,omitempty"`
	Category string              `json:"category,omitempty"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "hssandbox: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// correlationID makes a fresh id in the UUID shape HubSpot uses.
func correlationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// writeError writes HubSpot's error body with the given category.
func writeError(w http.ResponseWriter, status int, category, msg string, errs []errorDetail) {
	writeJSON(w, status, errorBody{Status: "error", Message: msg, CorrelationID: correlationID(), Category: category, Errors: errs})
}

// writeRateLimit writes HubSpot's 429 body for policy.
func writeRateLimit(w http.ResponseWriter, policy string) {
	msg := "You have reached your secondly limit."
	if policy == "DAILY" {
		msg = "You have reached your daily limit."
	}
	writeJSON(w, http.StatusTooManyRequests, errorBody{Status: "error", Message: msg, CorrelationID: correlationID(), Category: "RATE_LIMITS", PolicyName: policy})
}

// decode reads a JSON body into v, answering 400 and returning false when
// it does not parse.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: "+err.Error(), nil)
		return false
	}
	return true
}

package handlers

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error codes in the JSON error body, stable for callers and tests.
const (
	CodeBodyTooLarge  = "body_too_large"
	CodeBadSignature  = "bad_signature"
	CodeMalformed     = "malformed_body"
	CodeNoEmail       = "no_usable_email"
	CodeNoRoute       = "no_route"
	CodeFieldTooLong  = "field_too_long"
	CodeUnavailable   = "unavailable"
	CodeNotFound      = "not_found"
	CodeMethod        = "method_not_allowed"
	CodeUnauthorized  = "unauthorized"
	CodeTooManyLogins = "too_many_logins"
	CodeInternalError = "internal_error"
	// CodeIncompleteBody is a webhook body that stopped before its end: a
	// slow or aborted upload, or a malformed chunked encoding. The sender's
	// doing, answered 400 and logged as a warning.
	CodeIncompleteBody = "incomplete_body"
	// CodeBusy is a webhook body that found no memory within a short wait
	// while other bodies held it all; answered 503 with Retry-After.
	CodeBusy = "busy"
)

// busyRetryAfter is the Retry-After of a busy answer, in seconds: long
// enough for the bodies in flight to finish.
const busyRetryAfter = "30"

// apiError is the one error type handlers return; errorHandler turns it into
// the status and the JSON body {"error":{"code":…,"message":…}}.
type apiError struct {
	status  int
	code    string
	message string
	cause   error // logged, never sent
}

func (e *apiError) Error() string { return e.code + ": " + e.message }
func (e *apiError) Unwrap() error { return e.cause }

func newError(status int, code, message string, cause error) *apiError {
	return &apiError{status: status, code: code, message: message, cause: cause}
}

// unavailable is the answer to any fault on our side during ingest. HubSpot
// retries 5xx for three days and never retries a 4xx, so our faults must
// never look like the caller's.
func unavailable(message string, cause error) *apiError {
	return newError(http.StatusServiceUnavailable, CodeUnavailable, message, cause)
}

// tooManyLogins is the answer to an ops login that may not be checked now:
// its address failed too often, or every check slot is taken. The caller
// sets Retry-After.
func tooManyLogins() *apiError {
	return newError(http.StatusTooManyRequests, CodeTooManyLogins, "too many ops logins; try again after Retry-After seconds", nil)
}

// busy is the answer to a body that could not get memory in time: a 503,
// which HubSpot retries, sent with Retry-After by errorHandler.
func busy(cause error) *apiError {
	return newError(http.StatusServiceUnavailable, CodeBusy, "too many webhook bodies are being read; retry later", cause)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorHandler is Echo's HTTPErrorHandler: the single mapping from errors to
// responses, including Echo's own 404 and 405.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var ae *apiError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &he):
			ae = fromEcho(he)
		default:
			ae = newError(http.StatusInternalServerError, CodeInternalError, "internal error", err)
		}
		if level, ok := logLevel(ae); ok {
			// Log the cause: an apiError's own text is only what the caller
			// was told, which says nothing about what failed.
			logged := err
			if ae.cause != nil {
				logged = ae.cause
			}
			log.Log(c.Request().Context(), level, "request failed", "status", ae.status, "code", ae.code, "path", c.Path(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", logged)
		}
		if ae.code == CodeBusy {
			c.Response().Header().Set("Retry-After", busyRetryAfter)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(ae.status)
			return
		}
		_ = c.JSON(ae.status, errorBody{Error: errorDetail{Code: ae.code, Message: ae.message}})
	}
}

// logLevel is the level an error answer is logged at, and whether it is
// logged at all. Our faults are errors; a broken upload and a shed body are
// warnings, since the sender or the load caused them and nothing in the
// process failed; other 4xx are the caller's business and not logged.
func logLevel(ae *apiError) (slog.Level, bool) {
	switch {
	case ae.code == CodeIncompleteBody || ae.code == CodeBusy:
		return slog.LevelWarn, true
	case ae.status >= 500:
		return slog.LevelError, true
	}
	return 0, false
}

func fromEcho(he *echo.HTTPError) *apiError {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	}
	switch he.Code {
	case http.StatusNotFound:
		return newError(he.Code, CodeNotFound, msg, he)
	case http.StatusMethodNotAllowed:
		return newError(he.Code, CodeMethod, msg, he)
	case http.StatusUnauthorized:
		return newError(he.Code, CodeUnauthorized, msg, he)
	case http.StatusRequestEntityTooLarge:
		return newError(he.Code, CodeBodyTooLarge, msg, he)
	}
	if he.Code >= 500 {
		return newError(he.Code, CodeInternalError, msg, he)
	}
	return newError(he.Code, "error", msg, he)
}

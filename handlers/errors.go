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
	CodeUnavailable   = "unavailable"
	CodeNotFound      = "not_found"
	CodeMethod        = "method_not_allowed"
	CodeUnauthorized  = "unauthorized"
	CodeTooManyLogins = "too_many_logins"
	CodeInternalError = "internal_error"
)

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
		if ae.status >= 500 {
			// Log the cause: an apiError's own text is only what the caller
			// was told, which says nothing about what failed.
			logged := err
			if ae.cause != nil {
				logged = ae.cause
			}
			log.Error("request failed", "status", ae.status, "code", ae.code, "path", c.Path(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", logged)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(ae.status)
			return
		}
		_ = c.JSON(ae.status, errorBody{Error: errorDetail{Code: ae.code, Message: ae.message}})
	}
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

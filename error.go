package billing

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to one HTTP status in the server's table.
const (
	EINVALID        = "invalid_request"        // 400
	EUNAUTHORIZED   = "unauthorized"           // 401
	EFORBIDDEN      = "forbidden"              // 403
	ENOTFOUND       = "not_found"              // 404
	EMETHOD         = "method_not_allowed"     // 405
	ECONFLICT       = "conflict"               // 409
	ETOOLARGE       = "request_too_large"      // 413
	EURITOOLONG     = "uri_too_long"           // 414
	EMEDIATYPE      = "unsupported_media_type" // 415
	ERATELIMITED    = "rate_limited"           // 429
	EINTERNAL       = "internal_error"         // 500
	ENOTIMPLEMENTED = "not_implemented"        // 501
	ESTRIPE         = "stripe_error"           // 502
	EUNAVAILABLE    = "service_unavailable"    // 503
	ETIMEOUT        = "stripe_timeout"         // 504
)

// Error is the one error type of the service. Its message is safe to show
// to the caller; anything else is reported as an internal error.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message is a human-readable, caller-safe description.
	Message string
	// Param names the request field at fault, when there is one.
	Param string
	// StripeCode is Stripe's own error code, when the error came from Stripe.
	StripeCode string
	// RetryAfter, when set, tells the caller how long to wait (rate limits).
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("billing error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error that names the field at fault.
func FieldErrorf(param, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EINTERNAL when err is not an *Error,
// and "" when err is nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

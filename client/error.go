package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of the service, each with one HTTP status.
const (
	CodeInvalidRequest     = "invalid_request"     // 400: Param names the field
	CodeUnauthorized       = "unauthorized"        // 401: credentials or buyer token
	CodeForbidden          = "forbidden"           // 403: such as Stripe not configured for the environment
	CodeNotFound           = "not_found"           // 404
	CodeConflict           = "conflict"            // 409
	CodeRequestTooLarge    = "request_too_large"   // 413
	CodeRateLimited        = "rate_limited"        // 429: see RetryAfter
	CodeInternalError      = "internal_error"      // 500
	CodeNotImplemented     = "not_implemented"     // 501
	CodeStripeError        = "stripe_error"        // 502: StripeCode says why, when Stripe refused
	CodeServiceUnavailable = "service_unavailable" // 503: retry later
	CodeStripeTimeout      = "stripe_timeout"      // 504
)

// Error is an answer of the service other than 2xx.
type Error struct {
	// StatusCode is the HTTP status, such as 404.
	StatusCode int
	// Code is one of the Code constants; empty when the answer was not the
	// service's (a proxy's error page, say).
	Code string
	// Message is a human-readable description, safe to show.
	Message string
	// Param names the request field at fault, when there is one.
	Param string
	// RequestID is the request's X-Request-Id, to quote when asking for help.
	RequestID string
	// StripeCode is Stripe's own error code, when Stripe refused the request.
	StripeCode string
	// RetryAfter is how long to wait before trying again (429 and 503).
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "billing: %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	fmt.Fprintf(&b, ": %s", e.Message)
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// IsNotFound reports whether err is the service's 404.
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound) }

// IsUnauthorized reports whether err is the service's 401.
func IsUnauthorized(err error) bool { return hasCode(err, CodeUnauthorized) }

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// newError reads the error envelope of a non-2xx answer.
func newError(resp *http.Response, body []byte) *Error {
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			Param      string `json:"param"`
			RequestID  string `json:"request_id"`
			StripeCode string `json:"stripe_code"`
		} `json:"error"`
	}
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message, e.Param, e.StripeCode = env.Error.Code, env.Error.Message, env.Error.Param, env.Error.StripeCode
		if env.Error.RequestID != "" {
			e.RequestID = env.Error.RequestID
		}
	} else {
		e.Message = http.StatusText(resp.StatusCode)
		if text := strings.TrimSpace(string(body)); text != "" && len(text) <= 200 {
			e.Message += ": " + text
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

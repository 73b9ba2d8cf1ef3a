package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

// codeStatus is the one table from error code to HTTP status.
var codeStatus = map[string]int{
	billing.EINVALID:        http.StatusBadRequest,
	billing.EUNAUTHORIZED:   http.StatusUnauthorized,
	billing.EFORBIDDEN:      http.StatusForbidden,
	billing.ENOTFOUND:       http.StatusNotFound,
	billing.EMETHOD:         http.StatusMethodNotAllowed,
	billing.ECONFLICT:       http.StatusConflict,
	billing.ETOOLARGE:       http.StatusRequestEntityTooLarge,
	billing.EURITOOLONG:     http.StatusRequestURITooLong,
	billing.EMEDIATYPE:      http.StatusUnsupportedMediaType,
	billing.ERATELIMITED:    http.StatusTooManyRequests,
	billing.EINTERNAL:       http.StatusInternalServerError,
	billing.ENOTIMPLEMENTED: http.StatusNotImplemented,
	billing.ESTRIPE:         http.StatusBadGateway,
	billing.EUNAVAILABLE:    http.StatusServiceUnavailable,
	billing.ETIMEOUT:        http.StatusGatewayTimeout,
}

// statusCode maps Echo's own HTTP errors (routing, binding) onto our codes.
var statusCode = map[int]string{
	http.StatusBadRequest:            billing.EINVALID,
	http.StatusUnauthorized:          billing.EUNAUTHORIZED,
	http.StatusForbidden:             billing.EFORBIDDEN,
	http.StatusNotFound:              billing.ENOTFOUND,
	http.StatusMethodNotAllowed:      billing.EMETHOD,
	http.StatusRequestEntityTooLarge: billing.ETOOLARGE,
	http.StatusRequestURITooLong:     billing.EURITOOLONG,
	http.StatusUnsupportedMediaType:  billing.EMEDIATYPE,
	http.StatusTooManyRequests:       billing.ERATELIMITED,
	http.StatusServiceUnavailable:    billing.EUNAVAILABLE,
}

// ErrorStatus returns the HTTP status for an error code.
func ErrorStatus(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// toBillingError turns any error into the *billing.Error shown to the client.
// Internal errors become a generic message.
func toBillingError(err error) *billing.Error {
	var be *billing.Error
	if errors.As(err, &be) {
		return be
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, ok := statusCode[he.Code]
		if !ok {
			return billing.Errorf(billing.EINTERNAL, "Internal error.")
		}
		msg := http.StatusText(he.Code) + "."
		switch {
		case he.Code == http.StatusNotFound:
			msg = "No such endpoint."
		case he.Code == http.StatusMethodNotAllowed:
			msg = "This method is not allowed on this path; the Allow header lists those that are."
		case he.Code == http.StatusRequestEntityTooLarge:
			msg = "Request body is larger than 1 MiB."
		case he.Code == http.StatusUnsupportedMediaType:
			msg = "Request body must be JSON: send Content-Type: application/json."
		default:
			if m, ok := he.Message.(string); ok && m != "" {
				msg = m
			}
		}
		return &billing.Error{Code: code, Message: msg}
	}
	return billing.Errorf(billing.EINTERNAL, "Internal error.")
}

// defaultRetryAfter is the Retry-After of a 503 that names no other.
const defaultRetryAfter = 5 * time.Second

// statusClientClosed is the status logged for a request whose client went
// away before the answer (nothing is written).
const statusClientClosed = 499

// errorHandler is installed as Echo's HTTPErrorHandler: it writes every error
// in the one envelope and logs internal faults. A request whose client went
// away is not a fault: it is logged with status 499 and not answered.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var be0 *billing.Error
		if c.Request().Context().Err() != nil && !errors.As(err, &be0) {
			c.Response().Status = statusClientClosed
			logger.InfoContext(c.Request().Context(), "client went away", "request_id", requestID(c), "route", c.Path())
			return
		}
		be := toBillingError(err)
		status := ErrorStatus(be.Code)
		if status >= 500 && be.Code != billing.ESTRIPE && be.Code != billing.ETIMEOUT && be.Code != billing.EUNAVAILABLE {
			logger.ErrorContext(c.Request().Context(), "request failed",
				"request_id", requestID(c), "route", c.Path(), "error", err.Error())
		}
		retryAfter := be.RetryAfter
		if retryAfter <= 0 && status == http.StatusServiceUnavailable {
			retryAfter = defaultRetryAfter
		}
		if retryAfter > 0 {
			secs := int(retryAfter.Seconds() + 0.999)
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		}
		body := gen.Error{Error: gen.ErrorBody{
			Code:      gen.ErrorBodyCode(be.Code),
			Message:   be.Message,
			RequestId: requestID(c),
		}}
		if be.Param != "" {
			body.Error.Param = &be.Param
		}
		if be.StripeCode != "" {
			body.Error.StripeCode = &be.StripeCode
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		writeJSON(c, status, body)
	}
}

// writeJSON writes v as JSON without escaping <, > and &: messages such
// as "Bearer <JWT>" read as written.
func writeJSON(c echo.Context, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		_ = c.NoContent(http.StatusInternalServerError)
		return
	}
	_ = c.Blob(status, echo.MIMEApplicationJSON, buf.Bytes())
}

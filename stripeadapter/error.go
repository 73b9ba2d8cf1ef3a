package stripeadapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/stripe/stripe-go/v76"

	"github.com/stackfordevs/billing"
)

// Caller-safe messages of translated Stripe failures.
const (
	msgKeyRejected  = "Stripe rejected this project's key."
	msgForbidden    = "Stripe denied this project's key access to the request."
	msgRateLimited  = "Stripe rate limited the request."
	msgUnavailable  = "Stripe is unavailable."
	msgTimeout      = "Stripe timed out."
	msgInvalidInput = "Stripe rejected the request."
)

// translateError turns what stripe-go returns into a *billing.Error:
//
//   - 400 invalid_request_error and idempotency_error: EINVALID with
//     Stripe's message, param and code.
//   - 402 card_error: EINVALID as well, keeping Stripe's message and code
//     (such as card_declined), since the buyer's input is at fault.
//   - 404: ENOTFOUND with Stripe's message (a resource_missing code on a
//     400, such as "No such price" in a create, stays EINVALID).
//   - 401: EFORBIDDEN with a fixed message; Stripe's own names part of the key.
//   - 403: EFORBIDDEN with a fixed message, keeping Stripe's code.
//   - 409: ECONFLICT with Stripe's message.
//   - 429: ERATELIMITED.
//   - 5xx, api_error, a response that is not Stripe's, or a connection
//     failure: ESTRIPE.
//   - an HTTP client timeout or an exceeded context deadline: ETIMEOUT.
//
// A canceled context is returned wrapped as is, for errors.Is. Every
// message kept from Stripe is scrubbed of anything that looks like a key.
func translateError(err error) error {
	if err == nil {
		return nil
	}
	var be *billing.Error
	if errors.As(err, &be) {
		return err
	}

	var se *stripe.Error
	if errors.As(err, &se) {
		return translateStripeError(se)
	}

	if errors.Is(err, context.DeadlineExceeded) {
		return &billing.Error{Code: billing.ETIMEOUT, Message: msgTimeout}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &billing.Error{Code: billing.ETIMEOUT, Message: msgTimeout}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stripe request: %w", context.Canceled)
	}
	return &billing.Error{Code: billing.ESTRIPE, Message: msgUnavailable}
}

func translateStripeError(se *stripe.Error) *billing.Error {
	code := string(se.Code)
	stripeMsg := redact(se.Msg)
	if stripeMsg == "" {
		stripeMsg = msgInvalidInput
	}
	status := se.HTTPStatusCode

	switch {
	case status == http.StatusUnauthorized:
		return &billing.Error{Code: billing.EFORBIDDEN, Message: msgKeyRejected, StripeCode: code}
	case status == http.StatusForbidden:
		return &billing.Error{Code: billing.EFORBIDDEN, Message: msgForbidden, StripeCode: code}
	case status == http.StatusTooManyRequests || se.Code == stripe.ErrorCodeRateLimit:
		return &billing.Error{Code: billing.ERATELIMITED, Message: msgRateLimited, StripeCode: code}
	case status >= 500 || se.Type == stripe.ErrorTypeAPI:
		return &billing.Error{Code: billing.ESTRIPE, Message: msgUnavailable, StripeCode: code}
	case status == http.StatusNotFound:
		return &billing.Error{Code: billing.ENOTFOUND, Message: stripeMsg, Param: se.Param, StripeCode: code}
	case status == http.StatusConflict:
		return &billing.Error{Code: billing.ECONFLICT, Message: stripeMsg, StripeCode: code}
	default:
		return &billing.Error{Code: billing.EINVALID, Message: stripeMsg, Param: se.Param, StripeCode: code}
	}
}

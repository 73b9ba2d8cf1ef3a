package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
)

// validator checks each request against the operation Echo matched, before
// any handler runs.
type validator struct {
	routes  map[string]*routers.Route // "METHOD /echo/:path"
	options *openapi3filter.Options
	// webhookOptions skip the body of Stripe's events: its signature is
	// checked over the raw bytes and the adapter parses it, rejecting what
	// the schema would (not JSON, no id or type), so a schema walk over
	// every 2 KB event would only repeat that work.
	webhookOptions *openapi3filter.Options

	// valid remembers GET requests (route, path values and query) that
	// passed: their validation depends on nothing else, so a repeat of the
	// same request skips it. Bounded by maxValidGETs.
	mu    sync.RWMutex
	valid map[string]struct{}
}

const maxValidGETs = 100_000

func newValidator(spec *openapi3.T) *validator {
	v := &validator{
		routes: make(map[string]*routers.Route),
		valid:  make(map[string]struct{}),
		options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults: true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.EnableFormatValidation(),
				openapi3.WithStringFormatValidator("email", formatFunc(validEmail)),
				openapi3.WithStringFormatValidator("uri", formatFunc(validURL)),
			},
		},
	}
	v.options.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string { return err.Reason })
	wo := *v.options
	wo.ExcludeRequestBody = true
	v.webhookOptions = &wo
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			v.routes[method+" "+echoPath(path)] = &routers.Route{
				Spec: spec, Path: path, PathItem: item, Method: method, Operation: op,
			}
		}
	}
	return v
}

// echoPath turns "/a/{id}" into Echo's "/a/:id".
func echoPath(p string) string {
	p = strings.ReplaceAll(p, "{", ":")
	return strings.ReplaceAll(p, "}", "")
}

type formatFunc func(string) error

func (f formatFunc) Validate(s string) error { return f(s) }

func validEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return errors.New("must be an email address")
	}
	return nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

func (v *validator) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		route, ok := v.routes[req.Method+" "+c.Path()]
		if !ok {
			return next(c)
		}
		var body []byte
		if req.Body != nil && req.Body != http.NoBody {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return billing.Errorf(billing.ETOOLARGE, "Request body is larger than 1 MiB.")
				}
				return billing.Errorf(billing.EINVALID, "Request body could not be read.")
			}
			body = b
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		memo := ""
		if req.Method == http.MethodGet && body == nil {
			memo = c.Path() + "\x00" + strings.Join(c.ParamValues(), "\x00") + "\x00" + req.URL.RawQuery
			v.mu.RLock()
			_, ok := v.valid[memo]
			v.mu.RUnlock()
			if ok {
				return next(c)
			}
		}
		params := make(map[string]string, len(c.ParamNames()))
		for i, name := range c.ParamNames() {
			params[name] = c.ParamValues()[i]
		}
		opts := v.options
		if route.Operation.OperationID == "receiveStripeWebhook" {
			opts = v.webhookOptions
		}
		in := &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route, Options: opts,
		}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			return requestError(err)
		}
		if memo != "" {
			v.mu.Lock()
			if len(v.valid) >= maxValidGETs {
				clear(v.valid)
			}
			v.valid[memo] = struct{}{}
			v.mu.Unlock()
		}
		// The validator may have consumed the body; hand a fresh reader on,
		// and keep the raw bytes for handlers that verify signatures.
		req.Body = io.NopCloser(bytes.NewReader(body))
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), rawBodyKey, body)))
		return next(c)
	}
}

// requestError turns a kin-openapi validation failure into a 400 that names
// the field at fault.
func requestError(err error) error {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return billing.Errorf(billing.EINVALID, "Invalid request.")
	}
	var se *openapi3.SchemaError
	hasSchemaErr := errors.As(re.Err, &se)
	switch {
	case re.Parameter != nil:
		name := re.Parameter.Name
		reason := re.Reason
		if hasSchemaErr {
			reason = boundReason(se)
		} else if re.Err != nil && reason == "" {
			reason = re.Err.Error()
		}
		if reason == "" {
			reason = "is invalid"
		}
		return billing.FieldErrorf(name, "%s: %s", name, reason)
	case re.RequestBody != nil:
		if hasSchemaErr {
			se.Reason = boundReason(se)
			field := strings.Join(se.JSONPointer(), ".")
			if field == "" {
				return billing.Errorf(billing.EINVALID, "Request body: %s", se.Reason)
			}
			return billing.FieldErrorf(field, "%s: %s", field, se.Reason)
		}
		if re.Err != nil && strings.Contains(re.Err.Error(), "value is required but missing") {
			return billing.Errorf(billing.EINVALID, "Request body is required.")
		}
		if re.Reason == "header Content-Type has unexpected value" || strings.Contains(fmt.Sprint(re.Err), "Content-Type") {
			return billing.Errorf(billing.EINVALID, "Request body must be JSON (Content-Type: application/json).")
		}
		return billing.Errorf(billing.EINVALID, "Request body is not valid JSON.")
	}
	return billing.Errorf(billing.EINVALID, "Invalid request: %s", re.Reason)
}

// boundReason says an integer bound as a whole number ("must be at most
// 99999999", not kin-openapi's 9.9999999e+07).
func boundReason(se *openapi3.SchemaError) string {
	s := se.Schema
	if s == nil || s.Type == nil || !s.Type.Is("integer") {
		return se.Reason
	}
	switch {
	case se.SchemaField == "maximum" && s.Max != nil:
		return fmt.Sprintf("must be at most %d", int64(*s.Max))
	case se.SchemaField == "minimum" && s.Min != nil:
		return fmt.Sprintf("must be at least %d", int64(*s.Min))
	}
	return se.Reason
}

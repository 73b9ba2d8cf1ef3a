package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	"github.com/oapi-codegen/runtime"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/routes"
)

// validator checks each request against the operation Echo matched, before
// any handler runs: path, query and header parameters, and the JSON body,
// which it decodes once. The handler receives the value it validated (see
// exactBinder), so no member the validator did not see can reach one.
type validator struct {
	ops     map[string]map[string]*operation // by method, then Echo path
	options *openapi3filter.Options
	// rawOptions skip the body of operations marked x-raw-body (the Stripe
	// webhook receiver): its signature is checked over the raw bytes and
	// the adapter parses it, rejecting what the schema would.
	rawOptions *openapi3filter.Options

	// valid remembers GET requests (route, path values and query) that
	// passed: their validation depends on nothing else, so a repeat of the
	// same request skips it.
	valid *memo
}

// operation is one spec operation as the validator uses it.
type operation struct {
	route   *routers.Route
	rawBody bool
	// query are the names of the declared query parameters; any other is
	// refused.
	query map[string]bool
	// headers are the declared header parameters, checked for NUL bytes
	// and invalid UTF-8.
	headers []string
	hasBody bool
}

// Bounds of the memo of validated GETs. A key is at most a URL, which is
// at most maxURLBytes; the memo is emptied when it would outgrow either
// bound, so neither entries nor bytes grow with what callers send.
const (
	maxValidGETs     = 50_000
	maxValidGETBytes = 8 << 20
)

func newValidator(spec *openapi3.T, table routes.Table) *validator {
	v := &validator{
		ops:   make(map[string]map[string]*operation),
		valid: newMemo(maxValidGETs, maxValidGETBytes),
		options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults: true,
			KeepValidatedValue:  true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.EnableFormatValidation(),
				openapi3.WithStringFormatValidator("email", formatFunc(validEmail)),
				openapi3.WithStringFormatValidator("uri", formatFunc(validURL)),
			},
		},
	}
	v.options.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string { return err.Reason })
	ro := *v.options
	ro.ExcludeRequestBody = true
	ro.KeepValidatedValue = false
	v.rawOptions = &ro
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			r, _ := table.Lookup(method, routes.EchoPath(path))
			o := &operation{
				route:   &routers.Route{Spec: spec, Path: path, PathItem: item, Method: method, Operation: op},
				rawBody: r.RawBody,
				query:   map[string]bool{},
				hasBody: op.RequestBody != nil,
			}
			for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, p := range params {
					switch p.Value.In {
					case openapi3.ParameterInQuery:
						o.query[p.Value.Name] = true
					case openapi3.ParameterInHeader:
						o.headers = append(o.headers, p.Value.Name)
					}
				}
			}
			if v.ops[method] == nil {
				v.ops[method] = make(map[string]*operation)
			}
			v.ops[method][routes.EchoPath(path)] = o
		}
	}
	return v
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
		op, ok := v.ops[req.Method][c.Path()]
		if !ok {
			return next(c)
		}
		memo := ""
		if req.Method == http.MethodGet && !op.hasBody {
			memo = c.Path() + "\x00" + strings.Join(c.ParamValues(), "\x00") + "\x00" + req.URL.RawQuery
			if v.valid.has(memo) {
				return next(c)
			}
		}
		params, err := v.checkParameters(c, op)
		if err != nil {
			return err
		}
		var body []byte
		if op.hasBody {
			if body, err = readBody(c, op.rawBody); err != nil {
				return err
			}
		}
		opts := v.options
		if op.rawBody {
			opts = v.rawOptions
		}
		if body != nil {
			req.Body, req.GetBody = io.NopCloser(bytes.NewReader(body)), nil
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: op.route, Options: opts}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			return requestError(err)
		}
		if memo != "" {
			v.valid.add(memo)
		}
		if op.hasBody {
			if vb, ok := req.Body.(validatedBody); ok {
				if err := checkText(vb.ValidatedValue(), ""); err != nil {
					return err
				}
			} else {
				// x-raw-body (or an optional body left out): the handler
				// reads the bytes from the context; the binder binds
				// nothing.
				req.Body = rawBody{io.NopCloser(bytes.NewReader(body))}
			}
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), rawBodyKey, body)))
		}
		return next(c)
	}
}

// checkParameters refuses query parameters the operation does not declare
// and NUL bytes or invalid UTF-8 in any path, query or header parameter,
// naming the parameter, and returns the path parameters.
func (v *validator) checkParameters(c echo.Context, op *operation) (map[string]string, error) {
	req := c.Request()
	params := make(map[string]string, len(c.ParamNames()))
	for i, name := range c.ParamNames() {
		val := c.ParamValues()[i]
		if req.URL.RawPath != "" {
			u, err := url.PathUnescape(val)
			if err != nil {
				return nil, billing.FieldErrorf(name, "%s: is not a valid path segment", name)
			}
			val = u
		}
		if !cleanText(val) {
			return nil, textError(name)
		}
		params[name] = c.ParamValues()[i]
	}
	if req.URL.RawQuery != "" {
		q, err := url.ParseQuery(req.URL.RawQuery)
		if err != nil {
			return nil, billing.Errorf(billing.EINVALID, "The query string is not valid.")
		}
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if !op.query[name] {
				if !cleanText(name) {
					return nil, billing.Errorf(billing.EINVALID, "The query string holds a NUL byte or invalid UTF-8.")
				}
				return nil, billing.FieldErrorf(name, "%s: is not a parameter of this operation", name)
			}
			for _, val := range q[name] {
				if !cleanText(val) {
					return nil, textError(name)
				}
			}
		}
	}
	for _, name := range op.headers {
		for _, val := range req.Header.Values(name) {
			if !cleanText(val) {
				return nil, textError(name)
			}
		}
	}
	return params, nil
}

// readBody reads the request body of an operation that has one. A JSON
// operation needs a JSON media type (compared case-insensitively) and
// UTF-8; a raw one (x-raw-body) takes any type.
func readBody(c echo.Context, raw bool) ([]byte, error) {
	req := c.Request()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, billing.Errorf(billing.ETOOLARGE, "Request body is larger than 1 MiB.")
			}
			return nil, billing.Errorf(billing.EINVALID, "Request body could not be read.")
		}
		body = b
	}
	if raw {
		return body, nil
	}
	if len(body) > 0 {
		ct := req.Header.Get(echo.HeaderContentType)
		mt, _, err := mime.ParseMediaType(ct)
		if ct == "" || err != nil || mt != echo.MIMEApplicationJSON {
			return nil, &billing.Error{Code: billing.EMEDIATYPE, Param: "Content-Type",
				Message: "Request body must be JSON: send Content-Type: application/json."}
		}
		if !utf8.Valid(body) {
			return nil, billing.Errorf(billing.EINVALID, "Request body is not valid UTF-8.")
		}
		// kin-openapi looks the media type up as sent; hand it the
		// canonical form so that any letter case validates alike.
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	return body, nil
}

// validatedBody is what kin-openapi leaves on a request body it validated
// with KeepValidatedValue.
type validatedBody interface {
	ValidatedValue() any
}

// rawBody marks the body of an x-raw-body operation, which is not bound.
type rawBody struct{ io.ReadCloser }

// exactBinder binds a request body from the value the validator decoded
// and validated, matching member names exactly; it is Echo's Binder, so
// no handler decodes a body a second time (encoding/json would match names
// case-insensitively, letting "Amount" override a validated "amount").
type exactBinder struct{}

// Bind implements echo.Binder.
func (exactBinder) Bind(i any, c echo.Context) error {
	switch b := c.Request().Body.(type) {
	case validatedBody:
		if err := runtime.BindJSONValue(b.ValidatedValue(), i); err != nil {
			return billing.Errorf(billing.EINVALID, "Request body does not match the operation's schema.")
		}
		return nil
	case rawBody:
		return nil
	}
	return fmt.Errorf("server: %s %s: the request body was not validated", c.Request().Method, c.Path())
}

// cleanText reports whether s is valid UTF-8 without NUL bytes, which no
// field of this API holds and PostgreSQL cannot store.
func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

func textError(field string) error {
	return billing.FieldErrorf(field, "%s: must be valid UTF-8 without NUL bytes", field)
}

// checkText walks a validated JSON value and refuses NUL bytes in any
// string or member name (the body is valid UTF-8 already, and JSON escapes
// cannot make it otherwise: encoding/json replaces lone surrogates).
func checkText(v any, path string) error {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return textError(path)
		}
	case map[string]any:
		for k, val := range v {
			if strings.IndexByte(k, 0) >= 0 {
				if path == "" {
					return billing.Errorf(billing.EINVALID, "Request body: member names must not hold NUL bytes")
				}
				return billing.FieldErrorf(path, "%s: member names must not hold NUL bytes", path)
			}
			if err := checkText(val, join(path, k)); err != nil {
				return err
			}
		}
	case []any:
		for i, val := range v {
			if err := checkText(val, join(path, strconv.Itoa(i))); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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
			field := strings.Join(se.JSONPointer(), ".")
			if member, ok := unsupportedMember(se); ok {
				field = join(field, member)
				return billing.FieldErrorf(field, "%s: is not a member of this request body (member names are matched exactly)", field)
			}
			se.Reason = boundReason(se)
			if field == "" {
				return billing.Errorf(billing.EINVALID, "Request body: %s", se.Reason)
			}
			return billing.FieldErrorf(field, "%s: %s", field, se.Reason)
		}
		if re.Err != nil && strings.Contains(re.Err.Error(), "value is required but missing") {
			return billing.Errorf(billing.EINVALID, "Request body is required.")
		}
		return billing.Errorf(billing.EINVALID, "Request body is not valid JSON.")
	}
	return billing.Errorf(billing.EINVALID, "Invalid request: %s", re.Reason)
}

// unsupportedMember returns the name of a member that a schema with
// additionalProperties: false does not define.
func unsupportedMember(se *openapi3.SchemaError) (string, bool) {
	if se.SchemaField != "properties" {
		return "", false
	}
	quoted, ok := strings.CutPrefix(se.Reason, "property ")
	if !ok {
		return "", false
	}
	quoted, ok = strings.CutSuffix(quoted, " is unsupported")
	if !ok {
		return "", false
	}
	name, err := strconv.Unquote(quoted)
	return name, err == nil
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

// memo is a set of strings bounded in entries and in bytes: when an
// addition would exceed either bound, the set starts again empty.
type memo struct {
	mu         sync.RWMutex
	m          map[string]struct{}
	bytes      int
	maxEntries int
	maxBytes   int
}

func newMemo(maxEntries, maxBytes int) *memo {
	return &memo{m: make(map[string]struct{}), maxEntries: maxEntries, maxBytes: maxBytes}
}

func (m *memo) has(k string) bool {
	m.mu.RLock()
	_, ok := m.m[k]
	m.mu.RUnlock()
	return ok
}

func (m *memo) add(k string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[k]; ok {
		return
	}
	if len(m.m) >= m.maxEntries || m.bytes+len(k) > m.maxBytes {
		clear(m.m)
		m.bytes = 0
	}
	m.m[k] = struct{}{}
	m.bytes += len(k)
}

// size returns the entries and bytes held.
func (m *memo) size() (entries, bytes int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m), m.bytes
}

// Package routes reads from the OpenAPI document what each operation needs
// before its handler runs: which credentials (the operation's `security`)
// and which hourly rate-limit budget (its `x-rate-limit` extension). The
// HTTP app builds its authentication and rate limiting from this table, so
// a route's protection is declared beside the route in openapi.yaml, and an
// operation that does not declare both stops the service at start-up.
package routes

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Extensions read from operations.
const (
	// RateLimitExtension names the budget class an operation draws on, or
	// NoBudget.
	RateLimitExtension = "x-rate-limit"
	// RawBodyExtension, when true, says the operation's body is read as raw
	// bytes whatever its media type and checked by its handler (the Stripe
	// webhook receiver verifies a signature over those bytes); the
	// request validator leaves it alone.
	RawBodyExtension = "x-raw-body"
)

// NoBudget is the x-rate-limit value of an operation that draws on no
// project's budget (health probes, the webhook receiver, the admin API).
const NoBudget = "none"

// Credentials is what a caller must present.
type Credentials uint8

// The credential kinds, from the security schemes of openapi.yaml.
const (
	// None is `security: []`.
	None Credentials = iota
	// Project is the four headers x-api-key, x-secret-key, x-tenant-id and
	// x-project-id (schemes ApiKey, SecretKey, TenantId, ProjectId).
	Project
	// Admin is `Authorization: Bearer <BILLING_ADMIN_TOKEN>` (AdminToken).
	Admin
)

// String names the credentials as log lines and errors do.
func (c Credentials) String() string {
	switch c {
	case Project:
		return "project"
	case Admin:
		return "admin"
	}
	return "none"
}

// projectSchemes are the security schemes that together are a project's
// credentials; buyerScheme adds the buyer's token to them.
var (
	projectSchemes = []string{"ApiKey", "SecretKey", "TenantId", "ProjectId"}
	buyerScheme    = "BuyerToken"
	adminScheme    = "AdminToken"
)

// Route is what one operation declares.
type Route struct {
	OperationID string
	Method      string
	// Path is the OpenAPI path, such as /v1/stripe/customers/{id}.
	Path string
	// EchoPath is the same path as Echo routes it: /v1/stripe/customers/:id.
	EchoPath    string
	Credentials Credentials
	// Buyer says the operation also needs the buyer's token; its handler
	// verifies it with the project's settings.
	Buyer bool
	// Budget is the x-rate-limit class, or NoBudget.
	Budget string
	// RawBody is the x-raw-body extension.
	RawBody bool
}

// Table holds every operation by method and Echo path. Lookups allocate
// nothing: they are made for every request.
type Table struct {
	m map[string]map[string]Route // method, then Echo path
	n int
}

// Lookup returns the route of a method and the Echo path it matched.
func (t Table) Lookup(method, echoPath string) (Route, bool) {
	r, ok := t.m[method][echoPath]
	return r, ok
}

// Len returns the number of operations.
func (t Table) Len() int { return t.n }

func (t *Table) add(r Route) {
	if t.m == nil {
		t.m = map[string]map[string]Route{}
	}
	if t.m[r.Method] == nil {
		t.m[r.Method] = map[string]Route{}
	}
	t.m[r.Method][r.EchoPath] = r
	t.n++
}

// FromSpec reads every operation of doc. budgets are the budget classes the
// service knows. It fails, naming every operation at fault, when an
// operation has no `security` of its own, names a scheme the service does
// not know or combines schemes in a way it does not support, has no
// x-rate-limit, or names a budget class that is not in budgets; and when an
// operation without project credentials draws on a budget (budgets are per
// project and environment).
func FromSpec(doc *openapi3.T, budgets []string) (Table, error) {
	var t Table
	var errs []error
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			r, err := readRoute(path, method, op, budgets)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			t.add(r)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return t, errors.Join(errs...)
}

func readRoute(path, method string, op *openapi3.Operation, budgets []string) (Route, error) {
	r := Route{OperationID: op.OperationID, Method: method, Path: path, EchoPath: EchoPath(path)}
	fail := func(format string, args ...any) (Route, error) {
		return Route{}, fmt.Errorf("routes: %s %s (%s): %s", method, path, op.OperationID, fmt.Sprintf(format, args...))
	}
	if op.Security == nil {
		return fail("no security: declare `security: []` or the credentials it needs")
	}
	switch len(*op.Security) {
	case 0:
		r.Credentials = None
	case 1:
		req := (*op.Security)[0]
		switch {
		case len(req) == 0:
			r.Credentials = None
		case hasAll(req, projectSchemes):
			r.Credentials = Project
			r.Buyer = has(req, buyerScheme)
			if len(req) != len(projectSchemes)+boolInt(r.Buyer) {
				return fail("security names schemes the service does not know: %v", names(req))
			}
		case len(req) == 1 && has(req, adminScheme):
			r.Credentials = Admin
		default:
			return fail("security %v is not the project's four credentials (with or without BuyerToken) or AdminToken", names(req))
		}
	default:
		return fail("security lists alternatives; the service supports one requirement per operation")
	}
	raw, ok := op.Extensions[RateLimitExtension]
	if !ok {
		return fail("no %s: name its budget class (%s) or %q", RateLimitExtension, strings.Join(budgets, ", "), NoBudget)
	}
	class, ok := raw.(string)
	if !ok || (class != NoBudget && !slices.Contains(budgets, class)) {
		return fail("%s %v is not a budget class (%s) or %q", RateLimitExtension, raw, strings.Join(budgets, ", "), NoBudget)
	}
	if class != NoBudget && r.Credentials != Project {
		return fail("%s %s needs project credentials: budgets are per project", RateLimitExtension, class)
	}
	r.Budget = class
	if v, ok := op.Extensions[RawBodyExtension]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return fail("%s must be true or false", RawBodyExtension)
		}
		r.RawBody = b
	}
	return r, nil
}

// EchoPath turns "/a/{id}" into Echo's "/a/:id".
func EchoPath(p string) string {
	p = strings.ReplaceAll(p, "{", ":")
	return strings.ReplaceAll(p, "}", "")
}

func has(req openapi3.SecurityRequirement, scheme string) bool {
	_, ok := req[scheme]
	return ok
}

func hasAll(req openapi3.SecurityRequirement, schemes []string) bool {
	for _, s := range schemes {
		if !has(req, s) {
			return false
		}
	}
	return true
}

func names(req openapi3.SecurityRequirement) []string {
	out := make([]string, 0, len(req))
	for k := range req {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

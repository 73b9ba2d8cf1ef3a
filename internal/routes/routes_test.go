package routes_test

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/routes"
)

var budgets = []string{"create", "query"}

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(billing.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestEveryOperationCovered checks that every operation of openapi.yaml
// declares its credentials and budget, and what a few declare.
func TestEveryOperationCovered(t *testing.T) {
	doc := loadSpec(t)
	table, err := routes.FromSpec(doc, budgets)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			n++
			r, ok := table.Lookup(method, routes.EchoPath(path))
			if !ok || r.OperationID != op.OperationID {
				t.Errorf("%s %s: not in the table", method, path)
			}
		}
	}
	if table.Len() != n {
		t.Errorf("got %d routes for %d operations", table.Len(), n)
	}
	for _, c := range []struct {
		method, path string
		want         routes.Route
	}{
		{"POST", "/v1/stripe/payment/intent", routes.Route{Credentials: routes.Project, Buyer: true, Budget: "create"}},
		{"GET", "/v1/stripe/customers/:id", routes.Route{Credentials: routes.Project, Budget: "query"}},
		{"GET", "/v1/usage", routes.Route{Credentials: routes.Project, Budget: "query"}},
		{"PUT", "/v1/setup/stripe", routes.Route{Credentials: routes.Project, Budget: "query"}},
		{"POST", "/v1/admin/tenants", routes.Route{Credentials: routes.Admin, Budget: routes.NoBudget}},
		{"POST", "/v1/stripe/webhook/:projectId", routes.Route{Credentials: routes.None, Budget: routes.NoBudget, RawBody: true}},
		{"GET", "/healthz", routes.Route{Credentials: routes.None, Budget: routes.NoBudget}},
	} {
		r, _ := table.Lookup(c.method, c.path)
		if r.Credentials != c.want.Credentials || r.Buyer != c.want.Buyer || r.Budget != c.want.Budget || r.RawBody != c.want.RawBody {
			t.Errorf("%s %s: got %+v, want %+v", c.method, c.path, r, c.want)
		}
	}
}

// TestFromSpecRefusesUndeclared checks that an operation that does not say
// what it needs stops the table from being built, naming it.
func TestFromSpecRefusesUndeclared(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(op *openapi3.Operation)
		error string
	}{
		{"ErrNoSecurity", func(op *openapi3.Operation) { op.Security = nil }, "no security"},
		{"ErrNoRateLimit", func(op *openapi3.Operation) { delete(op.Extensions, routes.RateLimitExtension) }, "no x-rate-limit"},
		{"ErrUnknownClass", func(op *openapi3.Operation) { op.Extensions[routes.RateLimitExtension] = "access" }, "not a budget class"},
		{"ErrUnknownScheme", func(op *openapi3.Operation) {
			op.Security = &openapi3.SecurityRequirements{{"ApiKey": {}, "Cookie": {}}}
		}, "security"},
		{"ErrAlternatives", func(op *openapi3.Operation) {
			op.Security = &openapi3.SecurityRequirements{{"AdminToken": {}}, {}}
		}, "alternatives"},
		{"ErrBudgetWithoutProject", func(op *openapi3.Operation) {
			op.Security = &openapi3.SecurityRequirements{{"AdminToken": {}}}
		}, "budgets are per project"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := loadSpec(t)
			op := doc.Paths.Value("/v1/stripe/customers").Get
			c.edit(op)
			_, err := routes.FromSpec(doc, budgets)
			if err == nil || !strings.Contains(err.Error(), c.error) || !strings.Contains(err.Error(), "listCustomers") {
				t.Errorf("got %v, want an error naming listCustomers and %q", err, c.error)
			}
		})
	}
	t.Run("OKNewClass", func(t *testing.T) {
		doc := loadSpec(t)
		doc.Paths.Value("/v1/stripe/customers").Get.Extensions[routes.RateLimitExtension] = "access"
		table, err := routes.FromSpec(doc, append(budgets, "access"))
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := table.Lookup("GET", "/v1/stripe/customers"); r.Budget != "access" {
			t.Errorf("got budget %q, want access", r.Budget)
		}
	})
}

// TestRequestSchemasClosed checks that every JSON request body schema, and
// every object schema within it, says additionalProperties: false (or
// gives a schema for them, as metadata does), so that a member the
// operation does not define is refused by the validator, never dropped.
func TestRequestSchemasClosed(t *testing.T) {
	doc := loadSpec(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.Extensions[routes.RawBodyExtension] == true {
				continue
			}
			mt := op.RequestBody.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil {
				t.Errorf("%s %s: no JSON schema", method, path)
				continue
			}
			checkClosed(t, method+" "+path, mt.Schema.Value, map[*openapi3.Schema]bool{})
		}
	}
}

func checkClosed(t *testing.T, where string, s *openapi3.Schema, seen map[*openapi3.Schema]bool) {
	t.Helper()
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if s.Type != nil && s.Type.Is("object") {
		ap := s.AdditionalProperties
		if ap.Schema == nil && (ap.Has == nil || *ap.Has) {
			t.Errorf("%s: an object schema (%v) admits any member: add additionalProperties: false", where, keys(s.Properties))
		}
	}
	for _, p := range s.Properties {
		checkClosed(t, where, p.Value, seen)
	}
	if s.Items != nil {
		checkClosed(t, where, s.Items.Value, seen)
	}
	for _, sub := range append(append(s.AllOf, s.AnyOf...), s.OneOf...) {
		checkClosed(t, where, sub.Value, seen)
	}
}

func keys(m openapi3.Schemas) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

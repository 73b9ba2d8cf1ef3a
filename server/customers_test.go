package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

func TestCustomers(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		test := gen.EnvironmentTest

		// create makes a customer of p through the generated client.
		create := func(t *testing.T, p *testProject, email string, md gen.Metadata) gen.Customer {
			t.Helper()
			em := openapi_types.Email(email)
			req := gen.CustomerRequest{Email: &em, Name: ptr("Ada Lovelace")}
			if md != nil {
				req.Metadata = &md
			}
			resp, err := e.API.CreateCustomerWithResponse(ctx, &gen.CreateCustomerParams{Environment: &test}, req, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("create customer: %v %s", err, body(resp))
			}
			return *resp.JSON200
		}

		t.Run("Create", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			em := openapi_types.Email("ada@example.com")
			md := gen.Metadata{"user_id": "u1", "plan": "gold"}
			resp, err := e.API.CreateCustomerWithResponse(ctx,
				&gen.CreateCustomerParams{Environment: &test, IdempotencyKey: ptr("signup-ada-1")},
				gen.CustomerRequest{Email: &em, Name: ptr("Ada"), Phone: ptr("+441234567890"), Metadata: &md}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			c := resp.JSON200
			want := map[string]string{"user_id": "u1", "plan": "gold", "tenant_id": p.TenantID, "project_id": p.ProjectID}
			if fmt.Sprint(c.Metadata) != fmt.Sprint(want) || deref(c.Email) != "ada@example.com" || deref(c.Phone) != "+441234567890" || c.Created == nil {
				t.Errorf("got %s, want the customer with metadata %v", resp.Body, want)
			}
			call := spy.only(t, p.StripeKey)
			if got := call.Header.Get("Idempotency-Key"); got != "signup-ada-1" {
				t.Errorf("got Idempotency-Key %q, want the caller's signup-ada-1", got)
			}
			wantForm(t, call, map[string]string{"metadata[plan]": "gold", "metadata[user_id]": "u1",
				"metadata[tenant_id]": p.TenantID, "metadata[project_id]": p.ProjectID, "phone": "+441234567890"})
			rec, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, c.Id)
			if err != nil || rec.UserID != "u1" || rec.Email != "ada@example.com" {
				t.Errorf("got record %+v, %v; want it recorded for user u1", rec, err)
			}
		})

		t.Run("RecordKeepsSentFields", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			// A Stripe that echoes none of the fields sent.
			spy.answer(p.StripeKey, func(w http.ResponseWriter, r *http.Request, _ url.Values) bool {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"cus_terse","object":"customer","created":1700000000,"metadata":{}}`)
				return true
			})
			em := openapi_types.Email("terse@example.com")
			md := gen.Metadata{"user_id": "u9"}
			resp, err := e.API.CreateCustomerWithResponse(ctx, nil, gen.CustomerRequest{Email: &em, Name: ptr("Terse"),
				Description: ptr("VIP"), Phone: ptr("+15550100"), Metadata: &md}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			rec, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, "cus_terse")
			if err != nil || rec.Email != "terse@example.com" || rec.Name != "Terse" || rec.Description != "VIP" || rec.Phone != "+15550100" ||
				rec.UserID != "u9" || rec.Metadata["project_id"] != p.ProjectID || !rec.Created.Equal(time.Unix(1700000000, 0)) {
				t.Errorf("got record %+v, %v; want the fields sent and Stripe's created time", rec, err)
			}
		})

		t.Run("ErrReservedMetadata", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			for _, key := range []string{"tenant_id", "project_id"} {
				md := gen.Metadata{key: "someone-else"}
				resp, _ := e.API.CreateCustomerWithResponse(ctx, nil, gen.CustomerRequest{Metadata: &md}, p.creds)
				if resp.JSON400 == nil || deref(resp.JSON400.Error.Param) != "metadata."+key {
					t.Errorf("%s: got %s, want 400 naming metadata.%s", key, body(resp), key)
				}
			}
			if calls := spy.calls(p.StripeKey); len(calls) != 0 {
				t.Errorf("got Stripe calls %v, want none", callPaths(calls))
			}
			if ids := p.customerIDs(t, billing.EnvTest); len(ids) != 0 {
				t.Errorf("got customers %v stored, want none", ids)
			}
		})

		t.Run("Get", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			c := create(t, p, "get@example.com", gen.Metadata{"user_id": "u2"})
			resp, err := e.API.GetCustomerWithResponse(ctx, c.Id, &gen.GetCustomerParams{Environment: &test}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			got := resp.JSON200
			if got.Id != c.Id || deref(got.Email) != "get@example.com" || got.Metadata["user_id"] != "u2" || got.Metadata["tenant_id"] != p.TenantID {
				t.Errorf("got %s, want %s with its email and metadata", resp.Body, c.Id)
			}
			calls := spy.calls(p.StripeKey)
			if last := calls[len(calls)-1]; last.Method != "GET" || last.Path != "/v1/customers/"+c.Id {
				t.Errorf("got Stripe call %s %s, want GET /v1/customers/%s", last.Method, last.Path, c.Id)
			}
		})

		t.Run("UpdateMergesMetadata", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			c := create(t, p, "merge@example.com", gen.Metadata{"user_id": "u3", "plan": "gold", "note": "vip"})
			md := gen.Metadata{"plan": "platinum", "note": ""}
			em := openapi_types.Email("New.Address@Example.com")
			resp, err := e.API.UpdateCustomerWithResponse(ctx, c.Id, &gen.UpdateCustomerParams{Environment: &test},
				gen.CustomerRequest{Email: &em, Metadata: &md}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{"metadata[plan]": "platinum", "metadata[note]": "",
				"metadata[tenant_id]": p.TenantID, "metadata[project_id]": p.ProjectID, "email": "New.Address@Example.com"})
			rec, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, c.Id)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"user_id": "u3", "plan": "platinum", "tenant_id": p.TenantID, "project_id": p.ProjectID}
			if fmt.Sprint(rec.Metadata) != fmt.Sprint(want) || rec.UserID != "u3" || rec.Name != "Ada Lovelace" {
				t.Errorf("got record %+v, want metadata %v (merged as Stripe merges it), user u3 and the name kept", rec, want)
			}
			list, err := e.API.ListCustomersWithResponse(ctx, &gen.ListCustomersParams{Email: ptr("new.address@example.COM")}, p.creds)
			if err != nil || list.JSON200 == nil || len(list.JSON200.Data) != 1 || list.JSON200.Data[0].Id != c.Id {
				t.Errorf("email filter after the change: got %v %s, want %s", err, body(list), c.Id)
			}
		})

		t.Run("Delete", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			c := create(t, p, "gone@example.com", nil)
			keep := create(t, p, "kept@example.com", nil)
			resp, err := e.API.DeleteCustomerWithResponse(ctx, c.Id, &gen.DeleteCustomerParams{Environment: &test}, p.creds)
			if err != nil || resp.JSON200 == nil || !resp.JSON200.Deleted || resp.JSON200.Id != c.Id {
				t.Fatalf("got %v %s, want 200 deleted", err, body(resp))
			}
			calls := spy.calls(p.StripeKey)
			if last := calls[len(calls)-1]; last.Method != "DELETE" || last.Path != "/v1/customers/"+c.Id {
				t.Errorf("got Stripe call %s %s, want DELETE /v1/customers/%s", last.Method, last.Path, c.Id)
			}
			if ids := p.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{keep.Id}) {
				t.Errorf("got customers %v, want only %s", ids, keep.Id)
			}
			before := len(spy.calls(p.StripeKey))
			for name, do := range map[string]func() (*http.Response, []byte){
				"Get": func() (*http.Response, []byte) { return e.do(t, "GET", "/v1/stripe/customers/"+c.Id, p.headers(), nil) },
				"Update": func() (*http.Response, []byte) {
					return e.do(t, "PUT", "/v1/stripe/customers/"+c.Id, p.headers(), strings.NewReader(`{"name":"x"}`))
				},
				"Delete": func() (*http.Response, []byte) {
					return e.do(t, "DELETE", "/v1/stripe/customers/"+c.Id, p.headers(), nil)
				},
			} {
				resp, b := do()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s after delete: got %d %s, want 404", name, resp.StatusCode, b)
				}
			}
			if n := len(spy.calls(p.StripeKey)); n != before {
				t.Errorf("got %d Stripe calls for a deleted customer, want none", n-before)
			}
		})

		t.Run("ErrNotThisProjects", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			// stripe-mock answers for any id; the service must not ask it.
			for _, method := range []string{"GET", "PUT", "DELETE"} {
				var reqBody io.Reader
				if method == "PUT" {
					reqBody = strings.NewReader(`{"name":"Mallory"}`)
				}
				resp, b := e.do(t, method, "/v1/stripe/customers/cus_1234567890", p.headers(), reqBody)
				wantNotFound(t, resp, b, "id")
			}
			if calls := spy.calls(p.StripeKey); len(calls) != 0 {
				t.Errorf("got Stripe calls %v, want none", callPaths(calls))
			}
		})

		t.Run("List", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			other := e.newProject(t, p.TenantID)
			// 23 customers, created a minute apart, as webhooks or a sync
			// would record them; the newest is cus_list22.
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			var newestFirst []string
			for i := range 23 {
				c := billing.Customer{
					ID: fmt.Sprintf("cus_list%02d", i), ProjectID: p.ProjectID, Environment: billing.EnvTest,
					Email: fmt.Sprintf("buyer%d@example.com", i%5), Created: base.Add(time.Duration(i) * time.Minute),
				}
				if err := e.DB.UpsertCustomer(ctx, c); err != nil {
					t.Fatal(err)
				}
				newestFirst = append([]string{c.ID}, newestFirst...)
			}
			if err := e.DB.UpsertCustomer(ctx, billing.Customer{ID: "cus_otherproject", ProjectID: other.ProjectID,
				Environment: billing.EnvTest, Email: "buyer0@example.com", Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := e.DB.UpsertCustomer(ctx, billing.Customer{ID: "cus_livemode", ProjectID: p.ProjectID,
				Environment: billing.EnvLive, Email: "buyer0@example.com", Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			ids := func(l *gen.CustomerList) []string {
				out := make([]string, len(l.Data))
				for i, c := range l.Data {
					out[i] = c.Id
				}
				return out
			}

			t.Run("DefaultLimit", func(t *testing.T) {
				resp, err := e.API.ListCustomersWithResponse(ctx, nil, p.creds)
				if err != nil || resp.JSON200 == nil {
					t.Fatalf("got %v %s", err, body(resp))
				}
				if got := ids(resp.JSON200); !slices.Equal(got, newestFirst[:10]) || !resp.JSON200.HasMore {
					t.Errorf("got %v has_more=%v, want %v has_more=true", got, resp.JSON200.HasMore, newestFirst[:10])
				}
			})
			t.Run("Pages", func(t *testing.T) {
				var all []string
				var after *string
				for page := 0; ; page++ {
					resp, err := e.API.ListCustomersWithResponse(ctx, &gen.ListCustomersParams{Limit: ptr(7), StartingAfter: after}, p.creds)
					if err != nil || resp.JSON200 == nil {
						t.Fatalf("page %d: got %v %s", page, err, body(resp))
					}
					got := ids(resp.JSON200)
					all = append(all, got...)
					if !resp.JSON200.HasMore {
						break
					}
					if page > 5 || len(got) != 7 {
						t.Fatalf("page %d: got %v with has_more, want 7 per page and an end", page, got)
					}
					after = &got[len(got)-1]
				}
				if !slices.Equal(all, newestFirst) {
					t.Errorf("got %v, want %v", all, newestFirst)
				}
			})
			t.Run("Max", func(t *testing.T) {
				resp, _ := e.API.ListCustomersWithResponse(ctx, &gen.ListCustomersParams{Limit: ptr(100)}, p.creds)
				if got := ids(resp.JSON200); !slices.Equal(got, newestFirst) || resp.JSON200.HasMore {
					t.Errorf("got %v has_more=%v, want all 23 and no more", got, resp.JSON200.HasMore)
				}
			})
			t.Run("Email", func(t *testing.T) {
				resp, _ := e.API.ListCustomersWithResponse(ctx, &gen.ListCustomersParams{Email: ptr("BUYER0@example.com")}, p.creds)
				want := []string{"cus_list20", "cus_list15", "cus_list10", "cus_list05", "cus_list00"}
				if got := ids(resp.JSON200); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v (case-insensitive, this project and environment only)", got, want)
				}
			})
			t.Run("ErrUnknownStartingAfter", func(t *testing.T) {
				for _, id := range []string{"cus_nope", "cus_otherproject", "cus_livemode"} {
					resp, b := e.do(t, "GET", "/v1/stripe/customers?starting_after="+id, p.headers(), nil)
					wantError(t, resp, b, http.StatusBadRequest, "starting_after")
				}
			})
			if calls := spy.calls(p.StripeKey); len(calls) != 0 {
				t.Errorf("got Stripe calls %v, want lists served from the local record", callPaths(calls))
			}
		})
	})
}

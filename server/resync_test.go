package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// stripeAccount fills the stand-in with an account of nCustomers customers
// and nSubs subscriptions (every fifth canceled, every seventh in the 2025
// shape), two products and their prices, and returns the subscriptions'
// statuses by id.
func stripeAccount(t testing.TB, fs *fakeStripe, nCustomers, nSubs int) map[string]string {
	t.Helper()
	now := time.Now()
	var customers, subs []string
	for i := range nCustomers {
		customers = append(customers, fmt.Sprintf(`{"id":"cus_sync%03d","object":"customer","email":"Sync%03d@Example.com",
			"name":"Customer %d","created":%d,"metadata":{}}`, i, i, i, now.Add(-time.Duration(i)*time.Minute).Unix()))
	}
	statuses := map[string]string{}
	for i := range nSubs {
		id := fmt.Sprintf("sub_sync%03d", i)
		status := "active"
		if i%5 == 0 {
			status = "canceled"
		}
		shape := "2023"
		if i%7 == 0 {
			shape = "2025"
		}
		statuses[id] = status
		subs = append(subs, subscriptionObject(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			Shape: shape, SubscriptionID: id, CustomerID: fmt.Sprintf("cus_sync%03d", i%nCustomers), Status: status,
			PriceID: fmt.Sprintf("price_sync%d", i%2), ProductID: fmt.Sprintf("prod_sync%d", i%2)})))
	}
	fs.setList("/v1/customers", customers)
	fs.setList("/v1/subscriptions", subs)
	fs.setList("/v1/products", []string{
		`{"id":"prod_sync0","object":"product","name":"Gold","active":true}`,
		`{"id":"prod_sync1","object":"product","name":"Silver","active":true}`,
	})
	fs.setList("/v1/prices", []string{
		`{"id":"price_sync0","object":"price","product":"prod_sync0","nickname":"Gold monthly","active":true}`,
		`{"id":"price_sync1","object":"price","product":"prod_sync1","nickname":null,"active":true}`,
	})
	return statuses
}

// listPages returns the starting_after of each page request of path.
func listPages(t *testing.T, fs *fakeStripe, path string) []string {
	t.Helper()
	var pages []string
	for _, r := range fs.seen() {
		if r.Method != http.MethodGet || r.Path != path {
			continue
		}
		if got := r.Form.Get("limit"); got != "100" {
			t.Errorf("%s: limit got %q, want 100", path, got)
		}
		if path == "/v1/subscriptions" && r.Form.Get("status") != "all" {
			t.Errorf("%s: status got %q, want all", path, r.Form.Get("status"))
		}
		pages = append(pages, r.Form.Get("starting_after"))
	}
	return pages
}

func TestAdminSyncProject(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		ctx := context.Background()
		p := e.newProject(t, "")
		statuses := stripeAccount(t, fs, 200, 260)

		// A webhook newer than the sync's reads: the sync must keep it.
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_sync001", CustomerID: "cus_sync001", Status: "past_due", Created: time.Now().Add(time.Hour)}), "applied")
		// An answer cached before the sync.
		if got := p.currentSubscription(t, "sync131@example.com"); got != nil {
			t.Fatalf("before the sync: got %+v, want none", got)
		}

		test := gen.EnvironmentTest
		job := e.adminSync(t, p.ProjectID, &gen.AdminSyncProjectParams{Environment: &test})
		if want := (gen.SyncCounts{Customers: 200, Products: 2, Prices: 2, Subscriptions: 260}); job.State != gen.SyncJobStateSucceeded || job.Counts != want {
			t.Errorf("got %s with %+v, want succeeded with %+v", job.State, job.Counts, want)
		}

		t.Run("EveryPage", func(t *testing.T) {
			if got, want := listPages(t, fs, "/v1/subscriptions"), []string{"", "sub_sync099", "sub_sync199"}; !slices.Equal(got, want) {
				t.Errorf("subscription pages: got starting_after %q, want %q", got, want)
			}
			if got, want := listPages(t, fs, "/v1/customers"), []string{"", "cus_sync099"}; !slices.Equal(got, want) {
				t.Errorf("customer pages: got starting_after %q, want %q", got, want)
			}
		})
		t.Run("AllStored", func(t *testing.T) {
			for id, status := range statuses {
				if id == "sub_sync001" {
					status = "past_due"
				}
				if s := e.subscription(t, p.ProjectID, id); s == nil || s.Status != status {
					t.Errorf("%s: got %+v, want %s", id, s, status)
				}
			}
			list, more, err := e.DB.ListCustomers(ctx, billing.CustomerFilter{ProjectID: p.ProjectID, Environment: billing.EnvTest, Limit: 100})
			if err != nil || len(list) != 100 || !more {
				t.Errorf("customers: got %d (more %t), %v; want a full page and more", len(list), more, err)
			}
		})
		t.Run("ServedFromMirror", func(t *testing.T) {
			got := p.currentSubscription(t, "SYNC131@example.com")
			if got == nil || got.Id != "sub_sync131" || got.Plan.Name != "Silver" || got.PlanId != "price_sync1" {
				t.Errorf("got %+v, want sub_sync131 on Silver", got)
			}
			if got := p.currentSubscription(t, "sync130@example.com"); got != nil {
				t.Errorf("customer with a canceled subscription only: got %+v, want none", got)
			}
		})
		t.Run("Again", func(t *testing.T) {
			if again := e.adminSync(t, p.ProjectID, &gen.AdminSyncProjectParams{Environment: &test}); again.Id == job.Id || again.Counts.Subscriptions != 260 {
				t.Fatalf("second sync: got %+v, want a new job that read 260 subscriptions", again)
			}
			if s := e.subscription(t, p.ProjectID, "sub_sync001"); s == nil || s.Status != "past_due" {
				t.Errorf("sub_sync001: got %+v, want past_due from the newer event", s)
			}
		})
		t.Run("ErrUnknownProject", func(t *testing.T) {
			resp, _ := e.API.AdminSyncProjectWithResponse(ctx, "prj_missing", &gen.AdminSyncProjectParams{}, admin)
			if resp.StatusCode() != http.StatusNotFound {
				t.Errorf("got %s, want 404", body(resp))
			}
		})
		t.Run("ErrNotConfigured", func(t *testing.T) {
			live := gen.EnvironmentLive
			resp, _ := e.API.AdminSyncProjectWithResponse(ctx, p.ProjectID, &gen.AdminSyncProjectParams{Environment: &live}, admin)
			if resp.StatusCode() != http.StatusForbidden {
				t.Errorf("got %s, want 403", body(resp))
			}
		})
		t.Run("ErrAdminToken", func(t *testing.T) {
			resp, _ := e.API.AdminSyncProjectWithResponse(ctx, p.ProjectID, &gen.AdminSyncProjectParams{}, p.creds)
			if resp.StatusCode() != http.StatusUnauthorized {
				t.Errorf("project credentials: got %s, want 401", body(resp))
			}
		})
		t.Run("ErrStripe", func(t *testing.T) {
			fs.fail(http.StatusInternalServerError)
			defer fs.fail(0)
			job := e.adminSync(t, p.ProjectID, &gen.AdminSyncProjectParams{})
			if job.State != gen.SyncJobStateFailed || deref(job.Error) == "" || job.FinishedAt == nil {
				t.Errorf("got %+v, want failed with Stripe's error", job)
			}
		})
	})
}

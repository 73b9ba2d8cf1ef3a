package main

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store/storetest"
)

// pagedStripe stands in for Stripe's list endpoints, serving lists by path
// in pages as Stripe does, and records each page's starting_after.
type pagedStripe struct {
	lists map[string][]string
	mu    sync.Mutex
	pages map[string][]string
}

func (s *pagedStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	list, ok := s.lists[r.URL.Path]
	if !ok || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"No such path"}}`)
		return
	}
	s.mu.Lock()
	s.pages[r.URL.Path] = append(s.pages[r.URL.Path], r.Form.Get("starting_after"))
	s.mu.Unlock()
	limit, _ := strconv.Atoi(r.Form.Get("limit"))
	if limit <= 0 {
		limit = 10
	}
	start := 0
	if after := r.Form.Get("starting_after"); after != "" {
		start = slices.IndexFunc(list, func(o string) bool { return strings.Contains(o, `"id":"`+after+`"`) }) + 1
	}
	end := min(start+limit, len(list))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"object":"list","url":%q,"has_more":%t,"data":[%s]}`, r.URL.Path, end < len(list), strings.Join(list[start:end], ","))
}

func TestSyncCommand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		key := make([]byte, 32)
		_, _ = cryptorand.Read(key)
		masterKey := base64.StdEncoding.EncodeToString(key)
		ring, err := secret.ParseKeyring(masterKey, "")
		if err != nil {
			t.Fatal(err)
		}
		db := storetest.MustOpenDSN(t, dsn, ring)
		p := storetest.MustCreateProject(t, db)
		err = db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvTest,
			SecretKey: "sk_test_sync0123456789", PublishableKey: "pk_test_sync0123456789"})
		if err != nil {
			t.Fatal(err)
		}

		stripe := &pagedStripe{lists: map[string][]string{}, pages: map[string][]string{}}
		for i := range 255 {
			stripe.lists["/v1/subscriptions"] = append(stripe.lists["/v1/subscriptions"], fmt.Sprintf(
				`{"id":"sub_cli%03d","object":"subscription","status":"active","customer":"cus_cli%03d","created":1700000000,
				"items":{"data":[{"id":"si_%d","current_period_end":1900000000,"price":{"id":"price_cli","product":"prod_cli"}}]}}`, i, i, i))
			stripe.lists["/v1/customers"] = append(stripe.lists["/v1/customers"], fmt.Sprintf(
				`{"id":"cus_cli%03d","object":"customer","email":"cli%03d@example.com","created":1700000000}`, i, i))
		}
		stripe.lists["/v1/products"] = []string{`{"id":"prod_cli","object":"product","name":"CLI Plan","active":true}`}
		stripe.lists["/v1/prices"] = []string{`{"id":"price_cli","object":"price","product":"prod_cli","active":true}`}
		srv := httptest.NewServer(stripe)
		t.Cleanup(srv.Close)

		vars := map[string]string{"BILLING_DATABASE_URL": dsn, "BILLING_MASTER_KEY": masterKey, "BILLING_STRIPE_API_BASE": srv.URL}
		getenv := func(k string) string { return vars[k] }

		var out, errOut bytes.Buffer
		if err := run(ctx, []string{"sync", "--project", p.ID, "--environment", "test"}, getenv, &out, &errOut); err != nil {
			t.Fatalf("sync: %v\n%s", err, errOut.String())
		}
		var n billing.SyncCounts
		if err := json.Unmarshal(out.Bytes(), &n); err != nil {
			t.Fatalf("output %q: %v", out.String(), err)
		}
		if want := (billing.SyncCounts{Customers: 255, Products: 1, Prices: 1, Subscriptions: 255}); n != want {
			t.Errorf("counts: got %+v, want %+v", n, want)
		}
		if got, want := stripe.pages["/v1/subscriptions"], []string{"", "sub_cli099", "sub_cli199"}; !slices.Equal(got, want) {
			t.Errorf("subscription pages: got starting_after %q, want %q", got, want)
		}
		for _, i := range []int{0, 99, 100, 199, 200, 254} {
			s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, fmt.Sprintf("CLI%03d@example.com", i))
			if err != nil || s.ID != fmt.Sprintf("sub_cli%03d", i) || s.PlanName != "CLI Plan" {
				t.Errorf("subscription of customer %d: got %+v, %v", i, s, err)
			}
		}

		errCases := map[string][]string{
			"ErrNoProject":       {"sync", "--environment", "test"},
			"ErrEnvironment":     {"sync", "--project", p.ID, "--environment", "prod"},
			"ErrUnknownProject":  {"sync", "--project", "prj_missing", "--environment", "test"},
			"ErrLiveNotSetUp":    {"sync", "--project", p.ID, "--environment", "live"},
			"ErrUnknownArgument": {"sync", "--project", p.ID, "--everything"},
		}
		for name, args := range errCases {
			t.Run(name, func(t *testing.T) {
				var out, errOut bytes.Buffer
				if err := run(ctx, args, getenv, &out, &errOut); err == nil {
					t.Errorf("got no error and %q, want an error", out.String())
				}
			})
		}
		t.Run("ErrStripe", func(t *testing.T) {
			down := map[string]string{"BILLING_DATABASE_URL": dsn, "BILLING_MASTER_KEY": masterKey, "BILLING_STRIPE_API_BASE": srv.URL + "/down"}
			var out, errOut bytes.Buffer
			err := run(ctx, []string{"sync", "--project", p.ID}, func(k string) string { return down[k] }, &out, &errOut)
			if err == nil || out.Len() != 0 {
				t.Errorf("got %v and %q, want an error and no output", err, out.String())
			}
		})
	})
}

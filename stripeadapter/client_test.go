package stripeadapter_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/stripemock"
	"github.com/stackfordevs/billing/stripeadapter"
)

var errStop = errors.New("stop")

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestClient_StripeMock runs every Client method against stripe-mock, which
// checks each request against Stripe's OpenAPI spec and answers with
// fixtures.
func TestClient_StripeMock(t *testing.T) {
	t.Parallel()
	base := stripemock.Start(t)
	a := stripeadapter.New(stripeadapter.Config{BaseURL: base, Logger: quietLogger()})
	// Objects are stamped with stripe-mock's clock (its Date header), which
	// is this machine's, to the second.
	start := time.Now().Add(-time.Second)
	stamped := func(at time.Time) bool { return !at.Before(start) && !at.After(time.Now().Add(time.Second)) }
	c := a.Client("prj_mock", billing.EnvTest, stripemock.TestKey)
	ctx := context.Background()

	t.Run("CheckoutSession", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			p    billing.CheckoutSessionParams
		}{
			{"Payment", billing.CheckoutSessionParams{
				Mode: "payment", LineItems: []billing.LineItem{{Price: "price_123", Quantity: 2}},
				SuccessURL: "https://app.example.com/ok", CancelURL: "https://app.example.com/cancel",
				CustomerEmail: "buyer@example.com", ClientReferenceID: "user_1",
				Metadata:            map[string]string{"tenant_id": "ten_1", "project_id": "prj_mock", "user_id": "user_1"},
				AllowPromotionCodes: new(true),
			}},
			{"Subscription", billing.CheckoutSessionParams{
				Mode: "subscription", LineItems: []billing.LineItem{{Price: "price_123", Quantity: 1}},
				SuccessURL: "https://app.example.com/ok", CancelURL: "https://app.example.com/cancel",
				Customer: "cus_123", ClientReferenceID: "user_1", TrialPeriodDays: new(int64(14)),
				Metadata:             map[string]string{"user_id": "user_1"},
				SubscriptionMetadata: map[string]string{"tenant_id": "ten_1", "project_id": "prj_mock", "user_id": "user_1"},
			}},
			{"SetupWithCurrency", billing.CheckoutSessionParams{
				Mode: "setup", Currency: "usd", Customer: "cus_123",
				SuccessURL: "https://app.example.com/ok", CancelURL: "https://app.example.com/cancel",
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, err := c.CreateCheckoutSession(ctx, tc.p, "")
				if err != nil {
					t.Fatalf("CreateCheckoutSession: %v", err)
				}
				if !strings.HasPrefix(s.ID, "cs_") || s.ProjectID != "prj_mock" || s.Environment != billing.EnvTest || !stamped(s.EventAt) {
					t.Errorf("got %+v", s)
				}
				if s.URL == "" {
					t.Errorf("URL: got empty, want the fixture's")
				}
			})
		}

		t.Run("ErrTrialOutsideSubscriptionMode", func(t *testing.T) {
			_, err := c.CreateCheckoutSession(ctx, billing.CheckoutSessionParams{
				Mode: "payment", LineItems: []billing.LineItem{{Price: "price_123", Quantity: 1}},
				SuccessURL: "https://app.example.com/ok", TrialPeriodDays: new(int64(7)),
			}, "")
			var be *billing.Error
			if !errors.As(err, &be) || be.Code != billing.EINVALID || be.Param != "trial_period_days" {
				t.Errorf("got %v, want EINVALID on trial_period_days", err)
			}
		})

		t.Run("ErrInvalidParams", func(t *testing.T) {
			// stripe-mock validates against the spec: an unknown mode is a 400.
			_, err := c.CreateCheckoutSession(ctx, billing.CheckoutSessionParams{
				Mode: "rental", SuccessURL: "https://app.example.com/ok",
			}, "")
			if got := billing.ErrorCode(err); got != billing.EINVALID {
				t.Errorf("got %q (%v), want %q", got, err, billing.EINVALID)
			}
		})

		t.Run("Get", func(t *testing.T) {
			s, err := c.GetCheckoutSession(ctx, "cs_test_123")
			if err != nil {
				t.Fatalf("GetCheckoutSession: %v", err)
			}
			if s.ID == "" || s.Mode == "" || s.Status == "" || s.ProjectID != "prj_mock" {
				t.Errorf("got %+v", s)
			}
		})
	})

	t.Run("PaymentIntent", func(t *testing.T) {
		pi, err := c.CreatePaymentIntent(ctx, billing.PaymentIntentParams{
			Amount: 2000, Currency: "usd", Description: "Order 1001", ReceiptEmail: "buyer@example.com",
			Customer: "cus_123", Metadata: map[string]string{"user_id": "user_1"},
		}, "order-1001")
		if err != nil {
			t.Fatalf("CreatePaymentIntent: %v", err)
		}
		if !strings.HasPrefix(pi.ID, "pi_") || pi.ClientSecret == "" || pi.Status == "" || pi.Amount == 0 || pi.UserID != "user_1" {
			t.Errorf("got %+v", pi)
		}
	})

	t.Run("PortalSession", func(t *testing.T) {
		url, err := c.CreatePortalSession(ctx, "cus_123", "https://app.example.com/account", "")
		if err != nil {
			t.Fatalf("CreatePortalSession: %v", err)
		}
		if !strings.HasPrefix(url, "https://") {
			t.Errorf("got %q, want a URL", url)
		}
	})

	t.Run("Customer", func(t *testing.T) {
		email, name := "ada@example.com", "Ada"
		created, err := c.CreateCustomer(ctx, billing.CustomerParams{
			Email: &email, Name: &name, Metadata: map[string]string{"tenant_id": "ten_1", "project_id": "prj_mock"},
		}, "")
		if err != nil {
			t.Fatalf("CreateCustomer: %v", err)
		}
		if !strings.HasPrefix(created.ID, "cus_") || created.ProjectID != "prj_mock" || !stamped(created.EventAt) {
			t.Errorf("create: got %+v", created)
		}

		got, err := c.GetCustomer(ctx, created.ID)
		if err != nil || got.ID != created.ID {
			t.Errorf("get: got %+v, %v", got, err)
		}

		phone := "+15555550100"
		updated, err := c.UpdateCustomer(ctx, created.ID, billing.CustomerParams{Phone: &phone}, "")
		if err != nil || updated.ID != created.ID {
			t.Errorf("update: got %+v, %v", updated, err)
		}

		if deleted, err := c.DeleteCustomer(ctx, created.ID); err != nil || !deleted.Deleted || !stamped(deleted.EventAt) {
			t.Errorf("delete: got %+v, %v", deleted, err)
		}

		if _, err := c.GetCustomer(ctx, ""); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("get empty id: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("GetSubscription", func(t *testing.T) {
		s, err := c.GetSubscription(ctx, "sub_123")
		if err != nil {
			t.Fatalf("GetSubscription: %v", err)
		}
		if s.ID != "sub_123" || s.CustomerID == "" || s.Status == "" || s.PriceID == "" || s.ProductID == "" ||
			s.CurrentPeriodEnd.IsZero() || len(s.Items) == 0 || !stamped(s.EventAt) {
			t.Errorf("got %+v", s)
		}
	})

	t.Run("GetProduct", func(t *testing.T) {
		p, err := c.GetProduct(ctx, "prod_any")
		if err != nil || p.ID != "prod_any" || p.Name == "" || !stamped(p.EventAt) {
			t.Errorf("got %+v, %v", p, err)
		}
	})

	t.Run("Lists", func(t *testing.T) {
		var customers, subs, products, prices int
		if err := c.ListCustomers(ctx, func(cu billing.Customer) error {
			if cu.ID == "" || cu.ProjectID != "prj_mock" {
				t.Errorf("customer: got %+v", cu)
			}
			customers++
			return nil
		}); err != nil {
			t.Errorf("ListCustomers: %v", err)
		}
		if err := c.ListSubscriptions(ctx, func(s billing.Subscription) error {
			if s.ID == "" || s.CurrentPeriodEnd.IsZero() {
				t.Errorf("subscription: got %+v", s)
			}
			subs++
			return nil
		}); err != nil {
			t.Errorf("ListSubscriptions: %v", err)
		}
		if err := c.ListProducts(ctx, func(p billing.Product) error {
			products++
			return nil
		}); err != nil {
			t.Errorf("ListProducts: %v", err)
		}
		if err := c.ListPrices(ctx, func(p billing.Price) error {
			if p.ProductID == "" {
				t.Errorf("price: got %+v", p)
			}
			prices++
			return nil
		}); err != nil {
			t.Errorf("ListPrices: %v", err)
		}
		if customers == 0 || subs == 0 || products == 0 || prices == 0 {
			t.Errorf("got %d customers, %d subscriptions, %d products, %d prices; want some of each", customers, subs, products, prices)
		}

		if err := c.ListCustomers(ctx, func(billing.Customer) error { return errStop }); !errors.Is(err, errStop) {
			t.Errorf("callback error: got %v, want it returned as is", err)
		}
	})
}

func TestStripeMockParallel(t *testing.T) {
	t.Parallel()
	// Two instances side by side must not clash on any port.
	a, b := stripemock.Start(t), stripemock.Start(t)
	if a == b {
		t.Fatalf("got the same URL twice: %s", a)
	}
	for _, base := range []string{a, b} {
		c := stripeadapter.New(stripeadapter.Config{BaseURL: base, Logger: quietLogger()}).Client("p", billing.EnvTest, stripemock.TestKey)
		if _, err := c.GetCustomer(context.Background(), "cus_1"); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
}

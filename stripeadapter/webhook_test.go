package stripeadapter_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

const whsec = "whsec_test_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e"

func TestVerifyWebhook(t *testing.T) {
	payload := stripetest.Event(t, "customer.created", nil)
	now := time.Now()

	t.Run("OK", func(t *testing.T) {
		body, header := stripetest.SignedPayload(t, payload, whsec, now)
		if err := stripeadapter.VerifyWebhook(body, header, whsec, 0); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})

	t.Run("TwoSignaturesWhileSecretRolls", func(t *testing.T) {
		_, oldHeader := stripetest.SignedPayload(t, payload, "whsec_old_secret", now)
		_, newHeader := stripetest.SignedPayload(t, payload, whsec, now)
		// t=...,v1=<old>,v1=<new>: either secret must verify.
		header := oldHeader + "," + strings.SplitN(newHeader, ",", 2)[1]
		for _, secret := range []string{whsec, "whsec_old_secret"} {
			if err := stripeadapter.VerifyWebhook(payload, header, secret, 0); err != nil {
				t.Errorf("secret %s: got %v, want nil", secret, err)
			}
		}
		if err := stripeadapter.VerifyWebhook(payload, header, "whsec_other", 0); err == nil {
			t.Errorf("a third secret: got nil, want an error")
		}
	})

	for _, tc := range []struct {
		name    string
		body    func() ([]byte, string)
		secret  string
		wantMsg string
	}{
		{"ErrWrongSecret", func() ([]byte, string) {
			return stripetest.SignedPayload(t, payload, "whsec_wrong", now)
		}, whsec, "Invalid Stripe signature."},
		{"ErrTamperedBody", func() ([]byte, string) {
			body, h := stripetest.SignedPayload(t, payload, whsec, now)
			tampered := strings.Replace(string(body), "buyer@example.com", "thief@example.com", 1)
			return []byte(tampered), h
		}, whsec, "Invalid Stripe signature."},
		{"ErrStaleTimestamp", func() ([]byte, string) {
			return stripetest.SignedPayload(t, payload, whsec, now.Add(-10*time.Minute))
		}, whsec, "Stripe signature timestamp is outside the tolerance."},
		{"ErrMissingHeader", func() ([]byte, string) {
			return payload, ""
		}, whsec, "Missing Stripe-Signature header."},
		{"ErrGarbledHeader", func() ([]byte, string) {
			return payload, "t=notanumber,v1=abc"
		}, whsec, "Invalid Stripe signature."},
		{"ErrNoV1Signature", func() ([]byte, string) {
			return payload, fmt.Sprintf("t=%d,v0=abcdef", now.Unix())
		}, whsec, "Invalid Stripe signature."},
		{"ErrEmptySecret", func() ([]byte, string) {
			return stripetest.SignedPayload(t, payload, "", now)
		}, "", "Invalid Stripe signature."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, header := tc.body()
			err := stripeadapter.VerifyWebhook(body, header, tc.secret, 5*time.Minute)
			if got := billing.ErrorCode(err); got != billing.EINVALID {
				t.Fatalf("code: got %q (%v), want %q", got, err, billing.EINVALID)
			}
			if got := billing.ErrorMessage(err); got != tc.wantMsg {
				t.Errorf("message: got %q, want %q", got, tc.wantMsg)
			}
		})
	}

	t.Run("ToleranceIsConfigurable", func(t *testing.T) {
		body, header := stripetest.SignedPayload(t, payload, whsec, now.Add(-10*time.Minute))
		if err := stripeadapter.VerifyWebhook(body, header, whsec, 15*time.Minute); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
}

func BenchmarkVerifyWebhook(b *testing.B) {
	payload := stripetest.Event(b, "customer.subscription.updated.2023-10-16", nil)
	body, header := stripetest.SignedPayload(b, payload, whsec, time.Now())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := stripeadapter.VerifyWebhook(body, header, whsec, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvent(b *testing.B) {
	payload := stripetest.Event(b, "customer.subscription.updated.2025-03-31", nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := stripeadapter.ParseEvent(payload, "prj_1", billing.EnvTest); err != nil {
			b.Fatal(err)
		}
	}
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func TestParseEvent(t *testing.T) {
	const project = "prj_01HPX4R2"
	env := billing.EnvTest
	trialEnd := unix(1744809590)
	canceledAt := unix(1707998400)

	for _, tc := range []struct {
		fixture     string
		wantType    string
		wantVersion string
		wantCreated int64
		want        billing.MirrorChange
		wantRefresh []string
	}{
		{
			fixture: "customer.subscription.updated.2023-10-16", wantType: "customer.subscription.updated",
			wantVersion: "2023-10-16", wantCreated: 1707998400,
			want: billing.MirrorChange{Subscriptions: []billing.Subscription{{
				ID: "sub_1OkQlzLz8sXh3kVbq2Fq7mNd", ProjectID: project, Environment: env,
				CustomerID: "cus_PZoYq2YbJ3mK8c", UserID: "user_42",
				PriceID: "price_1OkQd1Lz8sXh3kVbPremium", ProductID: "prod_PZoQ7bHcVw2Kx1", PlanName: "Premium monthly",
				Status: "active", CurrentPeriodStart: unix(1707998395), CurrentPeriodEnd: unix(1710504000), CancelAtPeriodEnd: true,
				CanceledAt: &canceledAt,
				Items: []billing.SubscriptionItem{{
					ID: "si_PZoYH7qD1wX3fT", PriceID: "price_1OkQd1Lz8sXh3kVbPremium", ProductID: "prod_PZoQ7bHcVw2Kx1", Quantity: 1,
					Interval: "month", IntervalCount: 1,
				}},
				Created: unix(1707998395), EventAt: unix(1707998400),
			}}},
		},
		{
			fixture: "customer.subscription.updated.2025-03-31", wantType: "customer.subscription.updated",
			wantVersion: "2025-03-31.basil", wantCreated: 1743600000,
			want: billing.MirrorChange{Subscriptions: []billing.Subscription{{
				ID: "sub_1R8xTcLz8sXh3kVb7Hk2pQrS", ProjectID: project, Environment: env,
				CustomerID: "cus_S3ZpK8vXqA1bTm", UserID: "auth0|66f0c2",
				PriceID: "price_1R8xS0Lz8sXh3kVbTeamEUR", ProductID: "prod_S3ZoTeamPlan01", PlanName: "Team",
				Status: "trialing",
				// The period of the item that ends last.
				CurrentPeriodStart: unix(1743599990),
				CurrentPeriodEnd:   unix(1746191999),
				TrialEnd:           &trialEnd,
				Items: []billing.SubscriptionItem{
					{ID: "si_S3ZpW1xYzA2bCd", PriceID: "price_1R8xS0Lz8sXh3kVbTeamEUR", ProductID: "prod_S3ZoTeamPlan01", Quantity: 5,
						Interval: "month", IntervalCount: 1, CurrentPeriodStart: 1743599990, CurrentPeriodEnd: 1746191990},
					{ID: "si_S3ZpAddonSeat02", PriceID: "price_1R8xS5Lz8sXh3kVbAddon", ProductID: "prod_S3ZoAddon0002", Quantity: 2,
						Interval: "month", IntervalCount: 1, CurrentPeriodStart: 1743599990, CurrentPeriodEnd: 1746191999},
				},
				Created: unix(1743599990), EventAt: unix(1743600000),
			}}},
		},
		{
			fixture: "customer.subscription.created.expanded", wantType: "customer.subscription.created",
			wantVersion: "2025-06-30.basil", wantCreated: 1751328000,
			want: billing.MirrorChange{Subscriptions: []billing.Subscription{{
				ID: "sub_1R9aB0Lz8sXh3kVbExpSub01", ProjectID: project, Environment: env,
				CustomerID: "cus_SExpanded00001", Email: "ada@example.com",
				PriceID: "price_1R9aA0Lz8sXh3kVbBasic", ProductID: "prod_SExpBasic0001", PlanName: "Basic plan",
				Status: "incomplete", CurrentPeriodStart: unix(1751327990), CurrentPeriodEnd: unix(1753920000),
				Items: []billing.SubscriptionItem{{
					ID: "si_SExpItem00001", PriceID: "price_1R9aA0Lz8sXh3kVbBasic", ProductID: "prod_SExpBasic0001", Quantity: 1,
					CurrentPeriodStart: 1751327990, CurrentPeriodEnd: 1753920000,
				}},
				Created: unix(1751327990), EventAt: unix(1751328000),
			}},
				// The product the item carries expanded is mirrored too.
				Products: []billing.Product{{ID: "prod_SExpBasic0001", ProjectID: project, Environment: env,
					Name: "Basic plan", Active: true, EventAt: unix(1751328000)}},
			},
		},
		{
			fixture: "checkout.session.completed.subscription", wantType: "checkout.session.completed",
			wantVersion: "2023-10-16", wantCreated: 1707998398,
			want: billing.MirrorChange{
				CheckoutSession: &billing.CheckoutSession{
					ID: "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ", ProjectID: project, Environment: env,
					UserID: "user_42", Mode: "subscription", Status: "complete", PaymentStatus: "paid",
					CustomerID: "cus_PZoYq2YbJ3mK8c", CustomerEmail: "Buyer@Example.com",
					SubscriptionID: "sub_1OkQlzLz8sXh3kVbq2Fq7mNd", AmountTotal: 2900, Currency: "usd",
					Created: unix(1707998350), EventAt: unix(1707998398),
				},
				Customers: []billing.Customer{{
					ID: "cus_PZoYq2YbJ3mK8c", ProjectID: project, Environment: env,
					Email: "Buyer@Example.com", UserID: "user_42", EventAt: unix(1707998398),
				}},
			},
			wantRefresh: []string{"sub_1OkQlzLz8sXh3kVbq2Fq7mNd"},
		},
		{
			fixture: "checkout.session.completed.payment", wantType: "checkout.session.completed",
			wantVersion: "2023-10-16", wantCreated: 1708001000,
			want: billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{
				ID: "cs_test_b9PaymentModeSession0000000000000000", ProjectID: project, Environment: env,
				UserID: "user_7", Mode: "payment", Status: "complete", PaymentStatus: "paid",
				CustomerEmail: "guest@example.org", PaymentIntentID: "pi_3OkRZzLz8sXh3kVb1aB2cD3e",
				AmountTotal: 1500, Currency: "gbp",
				Created: unix(1708000950), EventAt: unix(1708001000),
			}},
		},
		{
			fixture: "customer.created", wantType: "customer.created",
			wantVersion: "2023-10-16", wantCreated: 1707998394,
			want: billing.MirrorChange{Customers: []billing.Customer{{
				ID: "cus_PZoYq2YbJ3mK8c", ProjectID: project, Environment: env,
				Email: "buyer@example.com", Name: "Grace Hopper", Description: "Created through Checkout", Phone: "+14155550123",
				Metadata: map[string]string{"tenant_id": "ten_01HPX4Q8", "user_id": "user_42"},
				UserID:   "user_42", Created: unix(1707998394), EventAt: unix(1707998394),
			}}},
		},
		{
			fixture: "customer.deleted", wantType: "customer.deleted",
			wantVersion: "2023-10-16", wantCreated: 1708010000,
			want: billing.MirrorChange{Customers: []billing.Customer{{
				ID: "cus_PZoYq2YbJ3mK8c", ProjectID: project, Environment: env,
				Email: "buyer@example.com", Name: "Grace Hopper", Description: "Created through Checkout",
				Metadata: map[string]string{"user_id": "user_42"},
				UserID:   "user_42", Deleted: true, Created: unix(1707998394), EventAt: unix(1708010000),
			}}},
		},
		{
			fixture: "invoice.paid", wantType: "invoice.paid",
			wantVersion: "2023-10-16", wantCreated: 1707998399,
			wantRefresh: []string{"sub_1OkQlzLz8sXh3kVbq2Fq7mNd"},
		},
		{
			fixture: "invoice.paid.2025-03-31", wantType: "invoice.paid",
			wantVersion: "2025-03-31.basil", wantCreated: 1743600100,
			wantRefresh: []string{"sub_1R8xTcLz8sXh3kVb7Hk2pQrS"},
		},
		{
			fixture: "product.updated", wantType: "product.updated",
			wantVersion: "2023-10-16", wantCreated: 1707990000,
			want: billing.MirrorChange{Products: []billing.Product{{
				ID: "prod_PZoQ7bHcVw2Kx1", ProjectID: project, Environment: env,
				Name: "Premium", Active: true, EventAt: unix(1707990000),
			}}},
		},
		{
			fixture: "price.created", wantType: "price.created",
			wantVersion: "2023-10-16", wantCreated: 1707997001,
			want: billing.MirrorChange{Prices: []billing.Price{{
				ID: "price_1OkQd1Lz8sXh3kVbPremium", ProjectID: project, Environment: env,
				ProductID: "prod_PZoQ7bHcVw2Kx1", Nickname: "Premium monthly", Active: true, EventAt: unix(1707997001),
			}}},
		},
		{
			fixture: "payment_intent.succeeded", wantType: "payment_intent.succeeded",
			wantVersion: "2023-10-16", wantCreated: 1708001001,
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			payload := stripetest.Event(t, tc.fixture, nil)
			got, err := stripeadapter.ParseEvent(payload, project, env)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			ev := got.Event
			if ev.Type != tc.wantType || ev.APIVersion != tc.wantVersion || !ev.Created.Equal(unix(tc.wantCreated)) ||
				ev.ProjectID != project || ev.Environment != env || !strings.HasPrefix(ev.ID, "evt_") || string(ev.Payload) != string(payload) {
				t.Errorf("event: got %+v", ev)
			}
			if !reflect.DeepEqual(got.Change, tc.want) {
				t.Errorf("change:\n got %+v\nwant %+v", got.Change, tc.want)
			}
			if !reflect.DeepEqual(got.RefreshSubscriptions, tc.wantRefresh) {
				t.Errorf("refresh: got %v, want %v", got.RefreshSubscriptions, tc.wantRefresh)
			}
		})
	}
}

func TestParseEvent_Patched(t *testing.T) {
	t.Run("InvoiceWithExpandedSubscription", func(t *testing.T) {
		sub := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_exp", Status: "past_due"})
		var obj map[string]any
		mustUnmarshal(t, sub, &obj)
		payload := stripetest.Event(t, "invoice.paid", map[string]any{
			"type":                     "invoice.payment_failed",
			"data.object.subscription": obj["data"].(map[string]any)["object"],
		})
		got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvLive)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.RefreshSubscriptions) != 0 || len(got.Change.Subscriptions) != 1 ||
			got.Change.Subscriptions[0].ID != "sub_exp" || got.Change.Subscriptions[0].Status != "past_due" {
			t.Errorf("got %+v", got)
		}
	})

	t.Run("CustomerAsExpandedObjectInSession", func(t *testing.T) {
		payload := stripetest.Event(t, "checkout.session.completed.subscription", map[string]any{
			"data.object.customer":     map[string]any{"id": "cus_obj", "object": "customer", "email": "x@example.com"},
			"data.object.subscription": nil,
		})
		got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		if got.Change.CheckoutSession.CustomerID != "cus_obj" || got.Change.Customers[0].ID != "cus_obj" || len(got.RefreshSubscriptions) != 0 {
			t.Errorf("got %+v", got)
		}
	})

	t.Run("UnknownType", func(t *testing.T) {
		payload := stripetest.Event(t, "customer.created", map[string]any{"type": "customer.tax_id.created"})
		got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvTest)
		if err != nil || !got.Change.Empty() || got.Event.Type != "customer.tax_id.created" {
			t.Errorf("got %+v, %v; want an empty change and no error", got, err)
		}
	})
}

func TestParseEvent_Errors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"ErrNotJSON", []byte("not json")},
		{"ErrEmpty", nil},
		{"ErrArray", []byte(`[1,2]`)},
		{"ErrNoID", []byte(`{"type":"customer.created","created":1,"data":{"object":{"id":"cus_1"}}}`)},
		{"ErrNoType", []byte(`{"id":"evt_1","created":1,"data":{"object":{"id":"cus_1"}}}`)},
		{"ErrNotAnEvent", []byte(`{"id":"cus_1","object":"customer","type":"x"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stripeadapter.ParseEvent(tc.payload, "prj", billing.EnvTest)
			if got := billing.ErrorCode(err); got != billing.EINVALID {
				t.Errorf("got %q (%v), want %q", got, err, billing.EINVALID)
			}
			if errors.Is(err, stripeadapter.ErrUnprocessable) {
				t.Errorf("got ErrUnprocessable, want an invalid payload error")
			}
		})
	}

	for _, tc := range []struct {
		name    string
		fixture string
		set     map[string]any
	}{
		{"ObjectIsString", "customer.subscription.updated.2023-10-16", map[string]any{"data.object": "sub_123"}},
		{"ObjectIsNull", "customer.created", map[string]any{"data.object": nil}},
		{"NoData", "price.created", map[string]any{"data": nil}},
		{"ObjectWithoutID", "product.updated", map[string]any{"data.object.id": ""}},
		{"WrongObjectType", "customer.created", map[string]any{"data.object.object": "invoice"}},
		{"BadItems", "customer.subscription.updated.2025-03-31", map[string]any{"data.object.items.data": "many"}},
		{"BadCustomerField", "checkout.session.completed.subscription", map[string]any{"data.object.customer": 42}},
		{"BadExpandedSubscription", "invoice.paid", map[string]any{"data.object.subscription": map[string]any{"object": "subscription"}}},
	} {
		t.Run("ErrUnprocessable"+tc.name, func(t *testing.T) {
			payload := stripetest.Event(t, tc.fixture, tc.set)
			got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvTest)
			if !errors.Is(err, stripeadapter.ErrUnprocessable) {
				t.Fatalf("got %v, want ErrUnprocessable", err)
			}
			if got.Event.ID == "" || got.Event.Type == "" {
				t.Errorf("event: got %+v, want it set for storing", got.Event)
			}
		})
	}
}

func TestParseEvent_GeneratedSubscriptions(t *testing.T) {
	created := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	periodEnd := created.AddDate(0, 1, 0)
	for _, shape := range []string{"2023", "2025"} {
		for _, status := range []string{"active", "trialing", "past_due", "canceled", "paused"} {
			t.Run(shape+"/"+status, func(t *testing.T) {
				payload := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					EventID: "evt_gen", Type: "customer.subscription.deleted", Created: created, Shape: shape,
					SubscriptionID: "sub_gen", CustomerID: "cus_gen", Status: status, PriceID: "price_gen", ProductID: "prod_gen",
					CurrentPeriodEnd: periodEnd, CancelAtPeriodEnd: true, Metadata: map[string]string{"user_id": "u1"},
				})
				got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvTest)
				if err != nil {
					t.Fatal(err)
				}
				if got.Event.ID != "evt_gen" || got.Event.Type != "customer.subscription.deleted" || !got.Event.Created.Equal(created) {
					t.Errorf("event: got %+v", got.Event)
				}
				if len(got.Change.Subscriptions) != 1 {
					t.Fatalf("got %d subscriptions, want 1", len(got.Change.Subscriptions))
				}
				s := got.Change.Subscriptions[0]
				if s.ID != "sub_gen" || s.CustomerID != "cus_gen" || s.Status != status || s.PriceID != "price_gen" ||
					s.ProductID != "prod_gen" || !s.CurrentPeriodEnd.Equal(periodEnd) || !s.CancelAtPeriodEnd ||
					s.UserID != "u1" || !s.EventAt.Equal(created) {
					t.Errorf("got %+v", s)
				}
			})
		}
	}
}

func TestEvent_Patch(t *testing.T) {
	payload := stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{
		"id":      "evt_patched",
		"created": 1800000000,
		"data.object.items.data.1.current_period_end": 1900000000,
		"data.object.status":                          "canceled",
	})
	got, err := stripeadapter.ParseEvent(payload, "prj", billing.EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Change.Subscriptions[0]
	if got.Event.ID != "evt_patched" || !s.EventAt.Equal(unix(1800000000)) || s.Status != "canceled" || !s.CurrentPeriodEnd.Equal(unix(1900000000)) {
		t.Errorf("got %+v / %+v", got.Event, s)
	}
	if names := stripetest.EventNames(); len(names) < 8 {
		t.Errorf("EventNames: got %v", names)
	}
}

// TestEventTypes checks that every event type the service asks Stripe for
// changes the mirror (or names objects to read).
func TestEventTypes(t *testing.T) {
	fixtures := map[string]string{"checkout.session.": "checkout.session.completed.subscription", "customer.": "customer.created",
		"invoice.": "invoice.paid", "product.": "product.updated", "price.": "price.created"}
	for _, typ := range stripeadapter.EventTypes() {
		var payload []byte
		if strings.HasPrefix(typ, "customer.subscription.") {
			payload = stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{Type: typ})
		} else {
			for prefix, fixture := range fixtures {
				if strings.HasPrefix(typ, prefix) {
					payload = stripetest.Event(t, fixture, map[string]any{"type": typ})
				}
			}
		}
		if payload == nil {
			t.Fatalf("%s: no fixture for this type", typ)
		}
		p, err := stripeadapter.ParseEvent(payload, "prj_types", billing.EnvTest)
		if err != nil || p.Change.Empty() && len(p.RefreshSubscriptions) == 0 {
			t.Errorf("%s: got %+v, %v; want a change of the mirror", typ, p.Change, err)
		}
	}
}

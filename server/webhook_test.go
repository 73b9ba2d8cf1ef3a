package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/stripemock"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// header builds a Stripe-Signature header for payload at ts with one v1
// signature per secret.
func header(payload []byte, ts time.Time, secrets ...string) string {
	h := fmt.Sprintf("t=%d", ts.Unix())
	for _, s := range secrets {
		h += ",v1=" + hex.EncodeToString(webhook.ComputeSignature(ts, payload, s))
	}
	return h
}

// setLiveKeys configures the project's live environment with a live
// webhook signing secret, which it returns.
func (p *testProject) setLiveKeys(t *testing.T) string {
	t.Helper()
	live := gen.EnvironmentLive
	secret := "whsec_live_" + randHex(16)
	p.e.secret(secret)
	key := "sk_live_" + randHex(12)
	p.e.secret(key)
	resp, err := p.e.API.PutStripeSetupWithResponse(context.Background(), &gen.PutStripeSetupParams{Environment: &live},
		gen.StripeSetupRequest{SecretKey: key, PublishableKey: "pk_live_" + randHex(12), WebhookSecret: &secret}, p.creds)
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("put live stripe setup: %v %s", err, body(resp))
	}
	return secret
}

func TestWebhookSignature(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		other := e.newProject(t, "")
		liveSecret := p.setLiveKeys(t)
		now := time.Now()
		payload := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{Shape: "2025", SubscriptionID: "sub_sig"})
		path := webhookPath(p.ProjectID, billing.EnvTest)

		// nothingWritten asserts that neither the ledger nor the mirror of
		// either environment changed.
		nothingWritten := func(t *testing.T) {
			t.Helper()
			for _, env := range []billing.Environment{billing.EnvTest, billing.EnvLive} {
				if got := e.ledger(t, p.ProjectID, env); len(got) != 0 {
					t.Errorf("%s ledger: got %d events, want none", env, len(got))
				}
			}
			if s := e.subscription(t, p.ProjectID, "sub_sig"); s != nil {
				t.Errorf("mirror: got %+v, want no subscription", s)
			}
		}

		rejected := map[string]struct {
			body []byte
			sig  string
		}{
			"ErrNoHeader":          {payload, ""},
			"ErrEmptyHeader":       {payload, " "},
			"ErrWrongSecret":       {payload, header(payload, now, "whsec_wrong")},
			"ErrTamperedBody":      {[]byte(strings.Replace(string(payload), `"active"`, `"canceled"`, 1)), header(payload, now, p.WebhookKey)},
			"ErrStaleTimestamp":    {payload, header(payload, now.Add(-6*time.Minute), p.WebhookKey)},
			"ErrOtherProjectKey":   {payload, header(payload, now, other.WebhookKey)},
			"ErrLiveSecretForTest": {payload, header(payload, now, liveSecret)},
			"ErrMalformedHeader":   {payload, "t=notatime,v1=zz"},
			"ErrOnlyV0Signature":   {payload, strings.Replace(header(payload, now, p.WebhookKey), "v1=", "v0=", 1)},
			"ErrNoTimestamp":       {payload, strings.SplitN(header(payload, now, p.WebhookKey), ",", 2)[1]},
		}
		for name, c := range rejected {
			t.Run(name, func(t *testing.T) {
				status, b, err := e.postWebhook(path, c.body, c.sig)
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusBadRequest {
					t.Fatalf("got %d %s, want 400", status, b)
				}
				if eb := apiError(t, b); deref(eb.Param) != "Stripe-Signature" {
					t.Errorf("got error %+v, want it to name Stripe-Signature", eb)
				}
				nothingWritten(t)
			})
		}
		if strings.Contains(e.Logs.String(), string(payload)) {
			t.Error("a rejected payload appears in the logs")
		}

		// A live setup without a signing secret receives nothing.
		live := gen.EnvironmentLive
		if resp, err := e.API.PutStripeSetupWithResponse(context.Background(), &gen.PutStripeSetupParams{Environment: &live},
			gen.StripeSetupRequest{SecretKey: "sk_live_" + randHex(12), PublishableKey: "pk_live_" + randHex(12)}, other.creds); err != nil || resp.JSON200 == nil {
			t.Fatalf("put live setup without a webhook secret: %v %s", err, body(resp))
		}
		notFound := map[string]string{
			"ErrNoSigningSecret":  webhookPath(other.ProjectID, billing.EnvLive),
			"ErrUnknownProject":   webhookPath("prj_missing", billing.EnvTest),
			"ErrLiveNotSetUp":     webhookPath(e.newProject(t, "").ProjectID, billing.EnvLive),
			"ErrProjectOfNothing": webhookPath(p.ProjectID+"x", billing.EnvTest),
		}
		for name, path := range notFound {
			t.Run(name, func(t *testing.T) {
				status, b, err := e.postWebhook(path, payload, header(payload, now, p.WebhookKey))
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusNotFound {
					t.Fatalf("got %d %s, want 404", status, b)
				}
				nothingWritten(t)
			})
		}
		t.Run("ErrEnvironment", func(t *testing.T) {
			status, b, _ := e.postWebhook("/v1/stripe/webhook/"+p.ProjectID+"?environment=prod", payload, header(payload, now, p.WebhookKey))
			if status != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", status, b)
			}
			nothingWritten(t)
		})

		// Accepted signatures; each delivery is a new event.
		accepted := map[string]func(payload []byte) string{
			"CurrentSecret":   func(b []byte) string { return header(b, time.Now(), p.WebhookKey) },
			"RolledSecret":    func(b []byte) string { return header(b, time.Now(), "whsec_old", p.WebhookKey) },
			"NewSecretSecond": func(b []byte) string { return header(b, time.Now(), p.WebhookKey, "whsec_next") },
			"FourMinutesOld":  func(b []byte) string { return header(b, time.Now().Add(-4*time.Minute), p.WebhookKey) },
			"WithV0SignatureToo": func(b []byte) string {
				return header(b, time.Now(), p.WebhookKey) + ",v0=" + hex.EncodeToString(webhook.ComputeSignature(time.Now(), b, "whsec_v0"))
			},
		}
		for name, sign := range accepted {
			t.Run(name, func(t *testing.T) {
				id := "sub_" + strings.ToLower(name)
				b := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: id})
				status, got, err := e.postWebhook(path, b, sign(b))
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusOK || !strings.Contains(string(got), `"applied"`) {
					t.Fatalf("got %d %s, want 200 applied", status, got)
				}
				if s := e.subscription(t, p.ProjectID, id); s == nil {
					t.Errorf("subscription %s not mirrored", id)
				}
			})
		}

		t.Run("LiveSecretForLive", func(t *testing.T) {
			b := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_live"})
			status, got, _ := e.postWebhook(webhookPath(p.ProjectID, billing.EnvLive), b, header(b, time.Now(), p.WebhookKey))
			if status != http.StatusBadRequest {
				t.Errorf("test secret on the live URL: got %d %s, want 400", status, got)
			}
			status, got, _ = e.postWebhook(webhookPath(p.ProjectID, billing.EnvLive), b, header(b, time.Now(), liveSecret))
			if status != http.StatusOK {
				t.Fatalf("live secret on the live URL: got %d %s, want 200", status, got)
			}
			if n := len(e.ledger(t, p.ProjectID, billing.EnvLive)); n != 1 {
				t.Errorf("live ledger: got %d events, want 1", n)
			}
			if _, err := e.DB.FindSubscription(context.Background(), p.ProjectID, billing.EnvLive, "sub_live"); err != nil {
				t.Errorf("live mirror: %v", err)
			}
			if s := e.subscription(t, p.ProjectID, "sub_live"); s != nil {
				t.Errorf("a live event reached the test mirror: %+v", s)
			}
		})
	})
}

// stripeProductName returns the name Stripe (stripe-mock) gives a product.
func (e *testEnv) stripeProductName(t testing.TB, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.StripeURL+"/v1/products/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+stripemock.TestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Name == "" {
		t.Fatalf("product %s from stripe-mock: %v (name %q)", id, err, p.Name)
	}
	return p.Name
}

// seedJSON is the subscription answer of the seed, with the values of a
// test filled in.
func seedJSON(tenantID, id, priceID, status string, periodEnd int64, cancel bool, plan string) string {
	return fmt.Sprintf(`{"subscription":{"id":%q,"tenantId":%q,"planId":%q,"status":%q,"currentPeriodEnd":%q,
		"stripeSubscriptionId":%q,"cancelAtPeriodEnd":%t,"plan":{"name":%q}}}`,
		id, tenantID, priceID, status, time.Unix(periodEnd, 0).UTC().Format(time.RFC3339), id, cancel, plan)
}

// sameJSON fails unless got and want hold the same JSON value.
func sameJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}

func TestWebhookAPIVersions(t *testing.T) {
	// The fixtures' periods ended long ago; periods that have not ended
	// keep the service from re-reading the subscriptions from Stripe.
	future := time.Now().Add(30 * 24 * time.Hour).Unix()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		t.Run("2023-10-16", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "product.updated", nil), "applied")
			p.mustDeliver(t, stripetest.Event(t, "price.created", nil), "applied")
			p.mustDeliver(t, stripetest.Event(t, "customer.created", nil), "applied")
			p.mustDeliver(t, stripetest.Event(t, "customer.subscription.updated.2023-10-16", map[string]any{
				"data.object.current_period_end": future}), "applied")
			status, b := p.subscriptionStatus(t, "buyer@example.com")
			if status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", status, b)
			}
			sameJSON(t, b, seedJSON(p.TenantID, "sub_1OkQlzLz8sXh3kVbq2Fq7mNd", "price_1OkQd1Lz8sXh3kVbPremium",
				"active", future, true, "Premium"))
		})
		t.Run("2025-03-31", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{
				"id": "evt_cus_2025", "data.object.id": "cus_S3ZpK8vXqA1bTm", "data.object.email": "Team@Example.de",
				"api_version": stripetest.APIVersion2025,
			}), "applied")
			p.mustDeliver(t, stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{
				"data.object.items.data.0.current_period_end": future - 9, "data.object.items.data.1.current_period_end": future}), "applied")
			status, b := p.subscriptionStatus(t, "team@example.de")
			if status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", status, b)
			}
			// The period ends with the last of the items' periods; the
			// plan is the first item's price, named by its product, which
			// the service read from Stripe since no event brought it.
			want := strings.TrimSuffix(seedJSON(p.TenantID, "sub_1R8xTcLz8sXh3kVb7Hk2pQrS", "price_1R8xS0Lz8sXh3kVbTeamEUR",
				"trialing", future, false, e.stripeProductName(t, "prod_S3ZoTeamPlan01")), "}}") + fmt.Sprintf(`,"trialEnd":%q}}`, time.Unix(1744809590, 0).UTC().Format(time.RFC3339))
			sameJSON(t, b, want)
		})
		t.Run("ExpandedCustomerAndProduct", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "customer.subscription.created.expanded", map[string]any{
				"data.object.status": "active", "data.object.items.data.0.current_period_end": future,
			}), "applied")
			status, b := p.subscriptionStatus(t, "ADA@example.com")
			if status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", status, b)
			}
			sameJSON(t, b, seedJSON(p.TenantID, "sub_1R9aB0Lz8sXh3kVbExpSub01", "price_1R9aA0Lz8sXh3kVbBasic",
				"active", future, false, "Basic plan"))
		})
		t.Run("GeneratedShapesAgree", func(t *testing.T) {
			p := e.newProject(t, "")
			created := time.Now().Truncate(time.Second)
			end := created.Add(30 * 24 * time.Hour)
			got := map[string]*billing.Subscription{}
			for _, shape := range []string{"2023", "2025"} {
				id := "sub_shape_" + shape
				p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					Shape: shape, SubscriptionID: id, CustomerID: "cus_shapes", Created: created, CurrentPeriodEnd: end,
					PriceID: "price_shapes", ProductID: "prod_shapes", CancelAtPeriodEnd: true, Status: "past_due",
				}), "applied")
				got[shape] = e.subscription(t, p.ProjectID, id)
			}
			for shape, s := range got {
				if s == nil || s.Status != "past_due" || !s.CurrentPeriodEnd.Equal(end) || !s.CancelAtPeriodEnd ||
					s.PriceID != "price_shapes" || s.ProductID != "prod_shapes" || s.CustomerID != "cus_shapes" {
					t.Errorf("%s shape: got %+v, want past_due until %v on price_shapes", shape, s, end)
				}
			}
		})
	})
}

// failingStore is the real store whose mirror writes fail while down is
// set, as when the database is unreachable.
type failingStore struct {
	*store.DB
	down bool
}

func (s *failingStore) Apply(ctx context.Context, w store.Write) (store.Applied, error) {
	if s.down {
		return store.Applied{}, fmt.Errorf("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return s.DB.Apply(ctx, w)
}

func TestWebhookLedger(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		t.Run("Duplicate", func(t *testing.T) {
			p := e.newProject(t, "")
			t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
			first := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_dup", Created: t0, Status: "active"})
			p.mustDeliver(t, first, "applied")
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_dup", Created: t0.Add(time.Minute), Status: "past_due"}), "applied")
			for i := range 3 {
				status, ack, b := p.deliver(t, first)
				if status != http.StatusOK || !ack.Received || !deref(ack.Duplicate) {
					t.Fatalf("redelivery %d: got %d %s, want 200 duplicate", i, status, b)
				}
			}
			if got := e.ledger(t, p.ProjectID, billing.EnvTest); len(got) != 2 {
				t.Errorf("ledger: got %d events, want 2", len(got))
			}
			if s := e.subscription(t, p.ProjectID, "sub_dup"); s == nil || s.Status != "past_due" {
				t.Errorf("mirror: got %+v, want past_due", s)
			}
		})
		t.Run("SameIDOtherProject", func(t *testing.T) {
			a, b := e.newProject(t, ""), e.newProject(t, "")
			ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_shared_id"})
			a.mustDeliver(t, ev, "applied")
			b.mustDeliver(t, ev, "applied")
			if e.subscription(t, a.ProjectID, "sub_shared_id") == nil || e.subscription(t, b.ProjectID, "sub_shared_id") == nil {
				t.Error("an event id known to one project was taken as a duplicate in another")
			}
		})
		t.Run("UnknownType", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "payment_intent.succeeded", nil), "ignored")
			p.mustDeliver(t, []byte(`{"id":"evt_future","object":"event","api_version":"2099-01-01.future","created":1900000000,
				"type":"v3.brand_new.thing","data":{"object":{"id":"thing_1","object":"brand_new_thing"}}}`), "ignored")
			got := e.ledger(t, p.ProjectID, billing.EnvTest)
			if len(got) != 2 {
				t.Fatalf("ledger: got %d events, want 2", len(got))
			}
			for _, ev := range got {
				if ev.Status != billing.EventIgnored {
					t.Errorf("%s: got status %q, want ignored", ev.ID, ev.Status)
				}
			}
		})
		t.Run("Unprocessable", func(t *testing.T) {
			p := e.newProject(t, "")
			bad := stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{
				"id": "evt_unreadable", "data.object.items": "not a list"})
			p.mustDeliver(t, bad, "failed")
			status, ack, b := p.deliver(t, bad)
			if status != http.StatusOK || !deref(ack.Duplicate) {
				t.Errorf("redelivery: got %d %s, want 200 duplicate", status, b)
			}
			if s := e.subscription(t, p.ProjectID, "sub_1R8xTcLz8sXh3kVb7Hk2pQrS"); s != nil {
				t.Errorf("mirror: got %+v, want nothing from a failed event", s)
			}
			resp, err := e.API.ListWebhookEventsWithResponse(ctx, &gen.ListWebhookEventsParams{}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("list events: %v %s", err, body(resp))
			}
			data := resp.JSON200.Data
			if len(data) != 1 || data[0].Id != "evt_unreadable" || data[0].Status != "failed" ||
				!strings.Contains(deref(data[0].Error), "evt_unreadable") || deref(data[0].ApiVersion) != stripetest.APIVersion2025 {
				t.Errorf("events: got %+v, want evt_unreadable failed with its error", data)
			}
		})
		t.Run("ErrNotAnEvent", func(t *testing.T) {
			p := e.newProject(t, "")
			for name, payload := range map[string]string{
				"NoID":     `{"object":"event","type":"customer.created","data":{"object":{}}}`,
				"NotEvent": `{"id":"cus_1","object":"customer","type":"customer.created"}`,
				"NotJSON":  `{"id":"evt_1","type":`,
				"NotAnObj": `["evt_1"]`,
				"NoType":   `{"id":"evt_2","object":"event","data":{"object":{}}}`,
			} {
				body, sig := stripetest.SignedPayload(t, []byte(payload), p.WebhookKey, time.Time{})
				status, b, _ := e.postWebhook(webhookPath(p.ProjectID, billing.EnvTest), body, sig)
				if status != http.StatusBadRequest {
					t.Errorf("%s: got %d %s, want 400", name, status, b)
				}
			}
			if got := e.ledger(t, p.ProjectID, billing.EnvTest); len(got) != 0 {
				t.Errorf("ledger: got %d events, want none", len(got))
			}
		})
		t.Run("ListEvents", func(t *testing.T) {
			p := e.newProject(t, "")
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			var want []string
			for i := range 5 {
				id := fmt.Sprintf("evt_list_%d", i)
				p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					EventID: id, SubscriptionID: "sub_list", Created: base.Add(time.Duration(i) * time.Second)}), "applied")
				want = append([]string{id}, want...)
			}
			var got []string
			var after *string
			for {
				resp, err := e.API.ListWebhookEventsWithResponse(ctx, &gen.ListWebhookEventsParams{Limit: ptr(2), StartingAfter: after}, p.creds)
				if err != nil || resp.JSON200 == nil {
					t.Fatalf("list: %v %s", err, body(resp))
				}
				for _, ev := range resp.JSON200.Data {
					got = append(got, ev.Id)
					if ev.Status != "applied" || ev.Type != "customer.subscription.updated" || ev.ReceivedAt.IsZero() {
						t.Errorf("event %+v", ev)
					}
				}
				if !resp.JSON200.HasMore {
					break
				}
				after = &got[len(got)-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want newest first %v", got, want)
			}
			other := e.newProject(t, "")
			resp, _ := e.API.ListWebhookEventsWithResponse(ctx, &gen.ListWebhookEventsParams{}, other.creds)
			if resp.JSON200 == nil || len(resp.JSON200.Data) != 0 {
				t.Errorf("another project's events: got %s, want none", body(resp))
			}
		})
	})
}

func TestWebhookTransientFailure(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		t.Run("StoreFailing", func(t *testing.T) {
			fs := &failingStore{DB: storetest.MustOpenDSN(t, dsn, newKeyring(t))}
			e := newTestEnv(t, fs.DB, func(c *serverConfig) { c.Store = fs })
			p := e.newProject(t, "")
			ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_transient"})
			fs.down = true
			status, _, b := p.deliver(t, ev)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("database down: got %d %s, want 503", status, b)
			}
			if strings.Contains(string(b), "5432") {
				t.Errorf("the answer shows the database error: %s", b)
			}
			fs.down = false
			if got := e.ledger(t, p.ProjectID, billing.EnvTest); len(got) != 0 {
				t.Fatalf("ledger after a failure: got %d events, want none", len(got))
			}
			// Stripe's retry then succeeds, once.
			p.mustDeliver(t, ev, "applied")
			if e.subscription(t, p.ProjectID, "sub_transient") == nil {
				t.Error("the retried event was not applied")
			}
		})
		t.Run("DatabaseClosed", func(t *testing.T) {
			db := storetest.MustOpenDSN(t, dsn, newKeyring(t))
			e := newTestEnv(t, db)
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{}), "applied")
			// A second instance that has not cached the project yet.
			cold := newTestEnv(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{})
			for name, env := range map[string]*testEnv{"Warm": e, "Cold": cold} {
				body, sig := stripetest.SignedPayload(t, ev, p.WebhookKey, time.Time{})
				status, b, err := env.postWebhook(webhookPath(p.ProjectID, billing.EnvTest), body, sig)
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusServiceUnavailable {
					t.Errorf("%s: got %d %s, want 503", name, status, b)
				}
			}
		})
	})
}

package stripeadapter_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestVerifyWebhookFutureTimestamp checks that a signature made more than
// the tolerance ahead of the clock is refused like a stale one.
func TestVerifyWebhookFutureTimestamp(t *testing.T) {
	payload := stripetest.Event(t, "customer.created", nil)
	now := time.Now()
	body, header := stripetest.SignedPayload(t, payload, whsec, now.Add(10*time.Minute))
	err := stripeadapter.VerifyWebhookAt(body, header, whsec, 5*time.Minute, now)
	if billing.ErrorMessage(err) != "Stripe signature timestamp is outside the tolerance." {
		t.Errorf("ten minutes ahead: got %v, want the tolerance error", err)
	}
	body, header = stripetest.SignedPayload(t, payload, whsec, now.Add(time.Minute))
	if err := stripeadapter.VerifyWebhookAt(body, header, whsec, 5*time.Minute, now); err != nil {
		t.Errorf("a minute ahead: got %v, want nil", err)
	}
}

// TestParseEventCleansText checks that NUL bytes and invalid UTF-8 in any
// string of an event never reach the change or the stored event's fields.
func TestParseEventCleansText(t *testing.T) {
	event := stripetest.Event(t, "customer.created", map[string]any{
		"id":                         "evt_nul\x00",
		"data.object.name":           "Ann\x00 Lee",
		"data.object.email":          "a\x00@example.com",
		"data.object.description":    "MARKER",
		"data.object.metadata.k\x00": "v\x00",
	})
	event = bytes.Replace(event, []byte("MARKER"), []byte("caf\xe9"), 1)
	p, err := stripeadapter.ParseEvent(event, "prj_1", billing.EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Change.Customers[0]
	for _, s := range []string{p.Event.ID, p.Event.Type, c.Name, c.Email, c.Description, c.ID} {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			t.Errorf("got %q, want no NUL and valid UTF-8", s)
		}
	}
	for k, v := range c.Metadata {
		if strings.IndexByte(k+v, 0) >= 0 {
			t.Errorf("metadata %q=%q holds a NUL", k, v)
		}
	}
	if c.Name != "Ann Lee" || p.Event.ID != "evt_nul" {
		t.Errorf("got name %q, id %q", c.Name, p.Event.ID)
	}
	if !bytes.Equal(p.Event.Payload, event) {
		t.Error("the stored payload is not the bytes received")
	}
}

// TestParseEventIgnoresOtherProjects checks that objects tagged with
// another project are not mirrored, and untagged ones are.
func TestParseEventIgnoresOtherProjects(t *testing.T) {
	for _, c := range []struct {
		name, fixture, field string
		tagged, want         bool
	}{
		{"CustomerOther", "customer.created", "data.object.metadata", true, false},
		{"CustomerUntagged", "customer.created", "data.object.metadata", false, true},
		{"SubscriptionOther", "customer.subscription.updated.2023-10-16", "data.object.metadata", true, false},
		{"CheckoutOther", "checkout.session.completed.subscription", "data.object.metadata", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			md := map[string]any{"user_id": "user_1"}
			if c.tagged {
				md["project_id"] = "prj_other"
			}
			p, err := stripeadapter.ParseEvent(stripetest.Event(t, c.fixture, map[string]any{c.field: md}), "prj_mine", billing.EnvTest)
			if err != nil {
				t.Fatal(err)
			}
			if got := !p.Change.Empty() || len(p.RefreshSubscriptions) > 0; got != c.want {
				t.Errorf("got change %+v, want mirrored %v", p.Change, c.want)
			}
		})
	}
}

// TestCallTimeout checks that a Stripe that does not answer ends a call in
// ETIMEOUT within the call timeout, whatever stripe-go's retries.
func TestCallTimeout(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	a := stripeadapter.New(stripeadapter.Config{BaseURL: hang.URL, Timeout: time.Second, MaxNetworkRetries: 2,
		CallTimeout: 400 * time.Millisecond, Logger: quietLogger()})
	c := a.Client("prj_1", billing.EnvTest, "sk_test_hang")
	start := time.Now()
	email := "hang@example.com"
	_, err := c.CreateCustomer(context.Background(), billing.CustomerParams{Email: &email}, "")
	if billing.ErrorCode(err) != billing.ETIMEOUT {
		t.Errorf("got %v, want ETIMEOUT", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v, want about 400ms", d)
	}
	if stripeadapter.DefaultCallTimeout >= 30*time.Second {
		t.Errorf("DefaultCallTimeout %v leaves no room within a 60s write timeout", stripeadapter.DefaultCallTimeout)
	}
}

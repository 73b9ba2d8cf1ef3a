package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/admin"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/internal/stripemock"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// The demo's buyer and customer.
const (
	demoUser  = "user_123"
	demoEmail = "customer@example.com"
)

// demoEventFile holds the signed test event the demo prints a curl line for.
var demoEventFile = filepath.Join(devDir, "demo-event.json")

func runDemo(ctx context.Context, inv *invocation) error {
	if err := inv.parse(); err != nil {
		return err
	}
	stripeURL := inv.getenv("BILLING_STRIPE_API_BASE")
	if stripeURL == "" {
		fmt.Fprintln(inv.stderr, "Starting stripe-mock (built once on first use, which takes a minute)...")
		mock, err := stripemock.StartProcess()
		if err != nil {
			return fmt.Errorf("stripe-mock cannot be started (install it with `make tools`, or set BILLING_STRIPE_API_BASE to a running one): %w", err)
		}
		defer mock.Stop()
		stripeURL = mock.URL
	}
	adminToken := inv.getenv("BILLING_ADMIN_TOKEN")
	if adminToken == "" {
		var err error
		if adminToken, err = devAdminToken(); err != nil {
			return err
		}
	}
	vars := map[string]string{"BILLING_DEV": "true", "BILLING_STRIPE_API_BASE": stripeURL, "BILLING_ADMIN_TOKEN": adminToken}
	if inv.getenv("BILLING_LOG_LEVEL") == "" {
		vars["BILLING_LOG_LEVEL"] = "warn"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var setupErr error
	serve := &invocation{
		cmd: inv.cmd, getenv: func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return inv.getenv(k)
		},
		stdout: inv.stdout, stderr: inv.stderr,
		flags: flag.NewFlagSet("billing demo", flag.ContinueOnError),
		listening: func(url string) {
			d := demo{url: url, stripeURL: stripeURL, adminToken: adminToken, program: os.Args[0]}
			if setupErr = d.setUp(ctx); setupErr == nil {
				setupErr = d.print(inv.stdout)
			}
			if setupErr != nil {
				cancel()
			}
		},
	}
	err := runServe(ctx, serve)
	if setupErr != nil {
		return fmt.Errorf("the demo project cannot be set up: %w", setupErr)
	}
	return err
}

// demo is the project the demo sets up on the running service, through its
// HTTP API as a developer would.
type demo struct {
	url, stripeURL, adminToken, program string

	creds      admin.Credentials
	customerID string
	token      string
	signature  string
}

func (d *demo) setUp(ctx context.Context) error {
	adminAuth := http.Header{"Authorization": {"Bearer " + d.adminToken}}
	var tenant struct{ ID string }
	if err := d.call(ctx, "POST", "/v1/admin/tenants", adminAuth, map[string]string{"name": "Demo"}, &tenant); err != nil {
		return err
	}
	if err := d.call(ctx, "POST", "/v1/admin/tenants/"+tenant.ID+"/projects", adminAuth, map[string]string{"name": "Demo app"}, &d.creds); err != nil {
		return err
	}
	random, err := secret.NewSecretKey()
	if err != nil {
		return err
	}
	webhookSecret, hs256 := "whsec_"+random[:24], random
	creds := http.Header{"X-Api-Key": {d.creds.APIKey}, "X-Secret-Key": {d.creds.SecretKey},
		"X-Tenant-Id": {d.creds.TenantID}, "X-Project-Id": {d.creds.ProjectID}}
	// stripe-mock takes any key that starts with sk_test_.
	keys := map[string]string{"secret_key": "sk_test_demo", "publishable_key": "pk_test_demo", "webhook_secret": webhookSecret}
	if err := d.call(ctx, "PUT", "/v1/setup/stripe?environment=test", creds, keys, nil); err != nil {
		return err
	}
	if err := d.call(ctx, "PUT", "/v1/setup/auth", creds, map[string]string{"hs256_secret": hs256}, nil); err != nil {
		return err
	}
	var customer struct{ ID string }
	if err := d.call(ctx, "POST", "/v1/stripe/customers?environment=test", creds, map[string]any{
		"email": demoEmail, "name": "Demo Customer", "metadata": map[string]string{"user_id": demoUser},
	}, &customer); err != nil {
		return err
	}
	d.customerID = customer.ID
	now := time.Now()
	if d.token, err = buyertoken.SignHS256(billing.AuthSettings{HS256Secret: hs256},
		buyertoken.Claims{Subject: demoUser, Email: demoEmail}, now, time.Hour); err != nil {
		return err
	}
	event, err := testEvent{Type: "customer.subscription.updated", CustomerID: d.customerID, Status: "active",
		PriceID: "price_test_default", UserID: demoUser}.build()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(demoEventFile, event, 0o600); err != nil {
		return err
	}
	d.signature = stripetest.Signature(event, webhookSecret, now)
	return nil
}

// call makes one JSON request to the service and decodes its answer into
// out; an answer other than 2xx is an error with the service's message.
func (d *demo) call(ctx context.Context, method, path string, h http.Header, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, errorText(answer))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

// print writes what to paste into a shell: every line that is not a
// command is a comment, so the whole of it runs as it is.
func (d *demo) print(w io.Writer) error {
	q := shellQuote
	c := d.creds
	_, err := fmt.Fprintf(w, `# Billing service on %[1]s in development mode; Stripe is stripe-mock at %[2]s.
# Project %[3]s of tenant %[4]s has Stripe test keys, an HS256 buyer-token secret and a
# webhook signing secret; its customer %[5]s (%[6]s) belongs to buyer %[7]s.
# The project's secret key is shown this once. Paste into bash, in this directory:

B=%[1]s
H=(-H %[8]s -H %[9]s -H %[10]s -H %[11]s)
TOKEN=%[12]s   # buyer %[7]s, valid for an hour
# a new token: %[13]s token --project %[3]s --sub %[7]s --email %[5]s

curl -s "$B/v1/stripe/customers?environment=test" "${H[@]}"; echo
curl -s -X POST "$B/v1/stripe/checkout/session?environment=test" "${H[@]}" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"mode":"subscription","line_items":[{"price":"price_test_default","quantity":1}],"success_url":"https://example.com/success"}'; echo
# Stripe's webhook saying the subscription is active, signed with the project's secret (accepted for 5 minutes):
curl -s -X POST "$B/v1/stripe/webhook/%[3]s?environment=test" -H 'Content-Type: application/json' \
  -H %[14]s --data-binary @%[15]s; echo
# the same, signed anew, at any time:
#   %[13]s webhook send --url "$B" --project %[3]s --customer %[6]s --user %[7]s
curl -s "$B/v1/customer/subscription?customerEmail=%[5]s&environment=test" "${H[@]}"; echo
curl -s "$B/v1/webhooks/events?environment=test" "${H[@]}"; echo

# Swagger UI: %[1]s/docs   setup page: %[1]s/setup   stop with Ctrl-C
`, d.url, d.stripeURL, c.ProjectID, c.TenantID, demoEmail, d.customerID, demoUser,
		q("x-api-key: "+c.APIKey), q("x-secret-key: "+c.SecretKey), q("x-tenant-id: "+c.TenantID), q("x-project-id: "+c.ProjectID),
		d.token, d.program, q("Stripe-Signature: "+d.signature), demoEventFile)
	return err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

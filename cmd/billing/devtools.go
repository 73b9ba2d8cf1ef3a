package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// devProject opens the database for the developer commands (token, webhook
// send) and finds the project named by --project. Without
// BILLING_MASTER_KEY they use the development key that `serve --dev`
// created in .billing/, when there is one. The caller closes the database.
func devProject(ctx context.Context, inv *invocation, id string) (*store.DB, config, *billing.Project, error) {
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return nil, c, nil, err
	}
	if c.MasterKey == "" && !c.Dev {
		if _, err := os.Stat(filepath.Join(devDir, "master.key")); err == nil {
			c.Dev = true
		}
	}
	db, err := openStore(ctx, c, newLogger(inv.stderr, c.LogLevel), c.AutoMigrate)
	if err != nil {
		return nil, c, nil, err
	}
	p, err := findProject(ctx, db, id)
	if err != nil {
		db.Close()
		return nil, c, nil, err
	}
	return db, c, p, nil
}

// findProject returns the project named by --project.
func findProject(ctx context.Context, db *store.DB, id string) (*billing.Project, error) {
	p, err := db.FindProjectByID(ctx, id)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, usageError{fmt.Errorf("--project: there is no project %s", id)}
	}
	return p, err
}

func runToken(ctx context.Context, inv *invocation) error {
	project := inv.flags.String("project", "", "project `id`")
	sub := inv.flags.String("sub", "", "the buyer's user `id` (the token's sub)")
	email := inv.flags.String("email", "", "the buyer's `email` (the token's email claim)")
	ttl := inv.flags.Duration("ttl", time.Hour, "how long the token is valid")
	if err := inv.parse(); err != nil {
		return err
	}
	if err := require("project", *project, "sub", *sub); err != nil {
		return err
	}
	if *ttl <= 0 {
		return usageError{fmt.Errorf("--ttl must be a positive duration such as 1h, not %s", *ttl)}
	}
	db, _, p, err := devProject(ctx, inv, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	settings, err := db.FindAuthSettings(ctx, p.ID)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return fmt.Errorf("project %s has no buyer-token settings; store an HS256 secret with PUT /v1/setup/auth", p.ID)
	} else if err != nil {
		return err
	}
	tok, err := buyertoken.SignHS256(*settings, buyertoken.Claims{Subject: *sub, Email: *email}, time.Now(), *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(inv.stdout, tok)
	return err
}

// testEvent is what `webhook send` puts into the subscription event it
// builds.
type testEvent struct {
	Type              string
	CustomerID        string
	SubscriptionID    string
	Status            string
	PriceID           string
	UserID            string
	CancelAtPeriodEnd bool
}

// build returns the event's JSON: a subscription object shaped as Stripe's
// API version 2023-10-16 sends it.
func (e testEvent) build() ([]byte, error) {
	if !strings.HasPrefix(e.Type, "customer.subscription.") {
		return nil, usageError{fmt.Errorf("--type must be a customer.subscription.* event such as customer.subscription.updated, not %q", e.Type)}
	}
	var md map[string]string
	if e.UserID != "" {
		md = map[string]string{"user_id": e.UserID}
	}
	return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
		Type:              e.Type,
		CustomerID:        e.CustomerID,
		SubscriptionID:    e.SubscriptionID,
		Status:            e.Status,
		PriceID:           e.PriceID,
		CancelAtPeriodEnd: e.CancelAtPeriodEnd,
		Metadata:          md,
	}), nil
}

func runWebhookSend(ctx context.Context, inv *invocation) error {
	project, envName := projectFlags(inv)
	serviceURL := inv.flags.String("url", "", "the service's `URL` (default http://localhost and the port of BILLING_ADDR)")
	var ev testEvent
	inv.flags.StringVar(&ev.Type, "type", "customer.subscription.updated", "event `type`, one of customer.subscription.*")
	inv.flags.StringVar(&ev.CustomerID, "customer", "", "the subscription's customer `id` (default a new one)")
	inv.flags.StringVar(&ev.SubscriptionID, "subscription", "", "subscription `id` (default a new one)")
	inv.flags.StringVar(&ev.Status, "status", "active", "subscription `status`")
	inv.flags.StringVar(&ev.PriceID, "price", "price_test_default", "price `id` of the subscription's item")
	inv.flags.StringVar(&ev.UserID, "user", "", "the buyer's user `id`, set as the subscription's metadata.user_id")
	inv.flags.BoolVar(&ev.CancelAtPeriodEnd, "cancel-at-period-end", false, "the subscription ends with its period")
	if err := inv.parse(); err != nil {
		return err
	}
	env, err := projectEnvironment(*project, *envName)
	if err != nil {
		return err
	}
	body, err := ev.build()
	if err != nil {
		return err
	}
	db, c, p, err := devProject(ctx, inv, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.FindStripeSettings(ctx, p.ID, env)
	if err != nil && billing.ErrorCode(err) != billing.ENOTFOUND {
		return err
	}
	if st == nil || st.WebhookSecret == "" {
		return fmt.Errorf("project %s has no webhook signing secret for %s; store one with PUT /v1/setup/stripe (webhook_secret)", p.ID, env)
	}
	base := *serviceURL
	if base == "" {
		base = localURL(c.Addr)
	}
	status, answer, err := postEvent(ctx, base, p.ID, env, body, stripetest.Signature(body, st.WebhookSecret, time.Now()))
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("the service answered %d: %s", status, errorText(answer))
	}
	_, err = fmt.Fprintln(inv.stdout, strings.TrimSpace(string(answer)))
	return err
}

// localURL is the URL of a service on this machine listening on addr.
func localURL(addr string) string {
	host, port, found := strings.Cut(addr, ":")
	if !found {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "[::]" {
		host = "localhost"
	}
	return "http://" + host + ":" + port
}

// postEvent posts a signed event to the webhook endpoint of a project and
// returns the answer.
func postEvent(ctx context.Context, base, projectID string, env billing.Environment, body []byte, signature string) (int, []byte, error) {
	endpoint := strings.TrimSuffix(base, "/") + "/v1/stripe/webhook/" + url.PathEscape(projectID) + "?environment=" + string(env)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, usageError{fmt.Errorf("--url: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signature)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("the service at %s cannot be reached (is it running? --url names another): %w", base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, answer, err
}

// errorText is the message of an error envelope, or the body as it is.
func errorText(body []byte) string {
	var env struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error.Message != "" {
		return env.Error.Message
	}
	return strings.TrimSpace(string(body))
}

package server

import (
	"context"
	"sync"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/stripeadapter"
)

// GetCustomerSubscription answers from the mirror, through a short-lived
// cache that every mirror change of the project invalidates.
func (s *Server) GetCustomerSubscription(ctx context.Context, req gen.GetCustomerSubscriptionRequestObject) (gen.GetCustomerSubscriptionResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	// Like every billing endpoint, an environment without Stripe keys is a
	// 403; the settings are cached, so this costs no query.
	if _, err := s.stripeSettings(ctx, p.ID, env); err != nil {
		return nil, err
	}
	email := billing.NormalizeEmail(string(req.Params.CustomerEmail))
	if email == "" {
		return nil, billing.FieldErrorf("customerEmail", "customerEmail: is required")
	}
	k := subKey{envKey{p.ID, env}, email}
	if resp, ok := s.subs.get(k); ok {
		return gen.GetCustomerSubscription200JSONResponse(resp), nil
	}
	version := s.subs.version(k.envKey)
	sub, err := s.store.FindActiveSubscriptionByEmail(ctx, p.ID, env, email)
	var resp gen.SubscriptionResponse
	switch {
	case err == nil:
		resp.Subscription = subscriptionJSON(p, sub)
	case billing.ErrorCode(err) != billing.ENOTFOUND:
		return nil, err
	}
	s.subs.put(k, version, resp)
	return gen.GetCustomerSubscription200JSONResponse(resp), nil
}

func subscriptionJSON(p *billing.Project, sub *billing.Subscription) *gen.Subscription {
	out := &gen.Subscription{
		Id:                   sub.ID,
		TenantId:             p.TenantID,
		PlanId:               sub.PriceID,
		Status:               gen.SubscriptionStatus(sub.Status),
		CurrentPeriodEnd:     sub.CurrentPeriodEnd.UTC(),
		StripeSubscriptionId: sub.ID,
		CancelAtPeriodEnd:    sub.CancelAtPeriodEnd,
	}
	out.Plan.Name = sub.PlanName
	if sub.TrialEnd != nil {
		out.TrialEnd = ptr(sub.TrialEnd.UTC())
	}
	return out
}

// refreshSubscription re-reads a subscription from Stripe into the mirror,
// with its customer when the mirror does not know the customer's email yet,
// so that the subscription can be found by email at once. A failure is
// logged: the webhooks will bring the same state later.
func (s *Server) refreshSubscription(ctx context.Context, client *stripeadapter.Client, projectID string, env billing.Environment, id string, claims buyertoken.Claims) {
	ctx, cancel := context.WithTimeout(ctx, stripeReadTimeout)
	defer cancel()
	sub, err := client.GetSubscription(ctx, id)
	if err != nil {
		s.logger.WarnContext(ctx, "subscription refresh failed", "project_id", projectID, "subscription", id, "error", err.Error())
		return
	}
	sub.ProjectID, sub.Environment = projectID, env
	if sub.UserID == "" {
		sub.UserID = claims.Subject
	}
	change := billing.MirrorChange{Subscriptions: []billing.Subscription{*sub}}
	if sub.Email == "" && sub.CustomerID != "" {
		if c, err := s.store.FindCustomer(ctx, projectID, env, sub.CustomerID); err != nil || c.Email == "" {
			if cus, err := client.GetCustomer(ctx, sub.CustomerID); err != nil {
				s.logger.WarnContext(ctx, "customer refresh failed", "project_id", projectID, "customer", sub.CustomerID, "error", err.Error())
			} else {
				cus.ProjectID, cus.Environment = projectID, env
				change.Customers = append(change.Customers, *cus)
			}
		}
	}
	if err := s.store.UpsertFromStripe(ctx, projectID, env, change); err != nil {
		s.logger.WarnContext(ctx, "subscription refresh not stored", "project_id", projectID, "subscription", id, "error", err.Error())
		return
	}
	s.changed(ctx, mirrorKey(projectID, env))
}

type subKey struct {
	envKey
	email string
}

type subEntry struct {
	resp    gen.SubscriptionResponse
	version uint64
	expires time.Time
}

// subscriptionCache keeps subscription-status answers for a short TTL. Each
// project and environment has a version that a mirror change bumps; an
// entry read under an older version is stale.
type subscriptionCache struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.RWMutex
	versions map[envKey]uint64
	entries  map[subKey]subEntry
}

const maxSubscriptionEntries = 200_000

func newSubscriptionCache(ttl time.Duration, now func() time.Time) *subscriptionCache {
	return &subscriptionCache{ttl: ttl, now: now, versions: map[envKey]uint64{}, entries: map[subKey]subEntry{}}
}

func (c *subscriptionCache) get(k subKey) (gen.SubscriptionResponse, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	v := c.versions[k.envKey]
	c.mu.RUnlock()
	if !ok || e.version != v || c.now().After(e.expires) {
		return gen.SubscriptionResponse{}, false
	}
	return e.resp, true
}

func (c *subscriptionCache) version(k envKey) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.versions[k]
}

// put stores an answer read under version; if the mirror changed since,
// the answer is dropped.
func (c *subscriptionCache) put(k subKey, version uint64, resp gen.SubscriptionResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.versions[k.envKey] != version {
		return
	}
	if len(c.entries) >= maxSubscriptionEntries {
		c.entries = make(map[subKey]subEntry)
	}
	c.entries[k] = subEntry{resp: resp, version: version, expires: c.now().Add(c.ttl)}
}

func (c *subscriptionCache) invalidate(k envKey) {
	c.mu.Lock()
	c.versions[k]++
	c.mu.Unlock()
}

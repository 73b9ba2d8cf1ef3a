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
	version, build := s.subs.miss(k.envKey)
	if build {
		go s.buildSubscriptionIndex(p, env, version)
	}
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

// buildSubscriptionIndex loads every active subscription of the project
// and environment into the cache in one query, so that any email, known or
// not, is answered from memory until the mirror changes.
func (s *Server) buildSubscriptionIndex(p *billing.Project, env billing.Environment, version uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := envKey{p.ID, env}
	subs, err := s.store.ActiveSubscriptionsByEmail(ctx, p.ID, env)
	if err != nil {
		s.subs.indexFailed(k)
		if billing.ErrorCode(err) != billing.ECONFLICT {
			s.logger.Warn("subscription index not built", "project_id", p.ID, "error", err.Error())
		}
		return
	}
	byEmail := make(map[string]gen.SubscriptionResponse, len(subs))
	for email, sub := range subs {
		byEmail[email] = gen.SubscriptionResponse{Subscription: subscriptionJSON(p, &sub)}
	}
	s.subs.putIndex(k, version, byEmail)
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

// subscriptionCache keeps subscription-status answers. Each project and
// environment has a version that a mirror change bumps; an answer read
// under an older version is stale. Answers are kept per email for a TTL;
// once a project and environment has missed indexAfterMisses times under
// one version, all its active subscriptions are indexed by email, and the
// index answers every email until the next change.
type subscriptionCache struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.RWMutex
	versions map[envKey]uint64
	entries  map[subKey]subEntry
	indexes  map[envKey]*subIndex
	misses   map[envKey]missCount
}

type subIndex struct {
	version  uint64
	building bool
	byEmail  map[string]gen.SubscriptionResponse
}

type missCount struct {
	version uint64
	n       int
}

// indexAfterMisses is how many cache misses under one version make the
// cache index the whole project and environment.
const indexAfterMisses = 16

const maxSubscriptionEntries = 200_000

func newSubscriptionCache(ttl time.Duration, now func() time.Time) *subscriptionCache {
	return &subscriptionCache{ttl: ttl, now: now, versions: map[envKey]uint64{}, entries: map[subKey]subEntry{},
		indexes: map[envKey]*subIndex{}, misses: map[envKey]missCount{}}
}

// get answers from the index of the email's project and environment, or
// from the email's own entry.
func (c *subscriptionCache) get(k subKey) (gen.SubscriptionResponse, bool) {
	c.mu.RLock()
	v := c.versions[k.envKey]
	if idx := c.indexes[k.envKey]; idx != nil && idx.byEmail != nil && idx.version == v {
		resp := idx.byEmail[k.email]
		c.mu.RUnlock()
		return resp, true
	}
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || e.version != v || c.now().After(e.expires) {
		return gen.SubscriptionResponse{}, false
	}
	return e.resp, true
}

// miss counts a miss and returns the current version, and whether the
// caller should build the index now (at most one build at a time).
func (c *subscriptionCache) miss(k envKey) (version uint64, build bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	version = c.versions[k]
	m := c.misses[k]
	if m.version != version {
		m = missCount{version: version}
	}
	m.n++
	c.misses[k] = m
	if m.n < indexAfterMisses {
		return version, false
	}
	if idx := c.indexes[k]; idx != nil && idx.building {
		return version, false
	}
	if len(c.indexes) >= maxIndexes {
		clear(c.indexes)
	}
	c.indexes[k] = &subIndex{version: version, building: true}
	return version, true
}

// maxIndexes bounds how many projects and environments are indexed at once.
const maxIndexes = 1000

// putIndex installs an index built under version, unless the mirror has
// changed since.
func (c *subscriptionCache) putIndex(k envKey, version uint64, byEmail map[string]gen.SubscriptionResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.versions[k] != version {
		delete(c.indexes, k)
		return
	}
	c.indexes[k] = &subIndex{version: version, byEmail: byEmail}
}

// indexFailed forgets a build that did not finish, so that a later miss
// may try again.
func (c *subscriptionCache) indexFailed(k envKey) {
	c.mu.Lock()
	delete(c.indexes, k)
	c.mu.Unlock()
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
	if idx := c.indexes[k]; idx != nil && !idx.building {
		delete(c.indexes, k)
	}
	c.mu.Unlock()
}

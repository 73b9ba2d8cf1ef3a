package mirror

import (
	"context"
	"sync"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/cache"
)

// CurrentSubscription answers which subscription gives a customer of a
// project's environment access now: among those active, trialing or past
// due, the one whose period ends last (nil when there is none). who names
// the customer by exactly one of email, user id and customer id; anything
// else is EINVALID.
//
// The answer comes from memory when it can: per-customer answers, and,
// after a burst of misses, an index of every active subscription of the
// project's environment, so that known and unknown customers alike cost no
// query. Both are dropped at once by any change the mirror publishes (on
// every instance that shares the bus through Redis) and expire after
// Config.AnswerTTL regardless. An active or trialing subscription whose
// period ended more than Config.StaleAfter ago without a renewal is re-read
// from Stripe (at most once per Config.RecheckEvery, within
// Config.QuickReadTimeout) before it is answered again.
//
// The subscription returned is shared: callers must not modify it.
func (m *Mirror) CurrentSubscription(ctx context.Context, projectID string, env billing.Environment, who billing.Who) (*billing.Subscription, error) {
	who = who.Normalized()
	if !who.Valid() {
		return nil, billing.Errorf(billing.EINVALID, "Name the customer by exactly one of email, user id and customer id.")
	}
	sc := scope{projectID, env}
	sub, ok := m.answers.get(sc, who)
	if !ok {
		var err error
		if sub, err = m.lookup(ctx, sc, who); err != nil {
			return nil, err
		}
	}
	if sub != nil && m.periodLapsed(sub) {
		return m.recheck(ctx, sc, who, sub)
	}
	return sub, nil
}

// lookup answers from the database and remembers the answer; a burst of
// lookups of one project's environment starts the build of its index.
func (m *Mirror) lookup(ctx context.Context, sc scope, who billing.Who) (*billing.Subscription, error) {
	version, build := m.answers.miss(sc)
	if build {
		go m.buildIndex(sc, version)
	}
	sub, err := m.store.FindActiveSubscription(ctx, sc.projectID, sc.env, who)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		sub, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	m.answers.put(sc, who, version, sub)
	return sub, nil
}

// buildIndex loads every active subscription of a project's environment in
// one query and installs the index, unless the mirror changed meanwhile.
func (m *Mirror) buildIndex(sc scope, version uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The index is as old as the moment its query starts.
	at := m.now()
	idx, err := m.store.ActiveSubscriptionIndex(ctx, sc.projectID, sc.env)
	if err != nil {
		m.answers.indexFailed(sc, version)
		if billing.ErrorCode(err) != billing.ECONFLICT {
			m.logger.Warn("subscription index not built", "project_id", sc.projectID, "error", err.Error())
		}
		return
	}
	m.answers.putIndex(sc, version, idx, at)
}

// periodLapsed reports whether a subscription still grants access although
// its period ended more than StaleAfter ago: the renewal Stripe should have
// announced may have been missed.
func (m *Mirror) periodLapsed(s *billing.Subscription) bool {
	if s.Status != "active" && s.Status != "trialing" || s.CurrentPeriodEnd.IsZero() {
		return false
	}
	return m.now().Sub(s.CurrentPeriodEnd) > m.cfg.StaleAfter
}

// recheck re-reads a subscription whose period lapsed from Stripe, unless
// it was re-read lately, and answers again. When the read fails, the stored
// answer stands.
func (m *Mirror) recheck(ctx context.Context, sc scope, who billing.Who, sub *billing.Subscription) (*billing.Subscription, error) {
	if !m.rechecks.Add(objectKey{sc, sub.ID}, struct{}{}) {
		return sub, nil
	}
	rctx, cancel := context.WithTimeout(ctx, m.cfg.QuickReadTimeout)
	defer cancel()
	if err := m.Refresh(rctx, sc.projectID, sc.env, Refs{Subscriptions: []string{sub.ID}}); err != nil {
		m.logger.WarnContext(ctx, "subscription with a lapsed period not re-read", "project_id", sc.projectID,
			"subscription", sub.ID, "error", err.Error())
		return sub, nil
	}
	fresh, err := m.lookup(ctx, sc, who)
	if err != nil {
		return sub, nil
	}
	return fresh, nil
}

// answers caches access answers per project's environment and customer,
// and indexes of whole projects' environments. Every project's environment
// has a version that each change replaces with a newer one; an answer or an
// index read under an older version is never served. Every answer and
// index also expires ttl after it was read.
type answers struct {
	ttl time.Duration
	now func() time.Time
	// entries are the per-customer answers, each with its version.
	entries *cache.TTL[answerKey, answer]

	// maxScopes and maxIndexed bound the states and the customers held by
	// all indexes together.
	maxScopes, maxIndexed int

	mu sync.RWMutex
	// counter is the last version given out; floor is the version of a
	// project's environment without state (raised when states are
	// dropped, so that no dropped version can come back).
	counter, floor uint64
	scopes         map[scope]*scopeState
	indexed        int // Who keys held by all indexes
}

type answerKey struct {
	scope
	who billing.Who
}

type answer struct {
	sub     *billing.Subscription
	version uint64
}

// scopeState is what the cache knows of one project's environment.
type scopeState struct {
	version uint64
	// misses counts the answers read from the database under version.
	misses int
	index  *index
}

// index answers every customer of a project's environment.
type index struct {
	version  uint64
	building bool
	expires  time.Time
	byWho    map[billing.Who]*billing.Subscription
}

// Bounds of the answers cache.
const (
	// indexAfterMisses is how many answers read from the database under
	// one version make the cache index the whole project's environment.
	indexAfterMisses = 16
	maxAnswers       = 200_000
	maxScopes        = 10_000
	// maxIndexed bounds the customers held by all indexes together.
	maxIndexed = 1_000_000
)

func newAnswers(ttl time.Duration, now func() time.Time) *answers {
	return &answers{ttl: ttl, now: now, entries: cache.New[answerKey, answer](ttl, maxAnswers, now),
		maxScopes: maxScopes, maxIndexed: maxIndexed, scopes: map[scope]*scopeState{}}
}

// get answers from the index of the project's environment, or from the
// customer's own answer.
func (a *answers) get(sc scope, who billing.Who) (*billing.Subscription, bool) {
	a.mu.RLock()
	version := a.floor
	if st := a.scopes[sc]; st != nil {
		version = st.version
		if idx := st.index; idx != nil && !idx.building && idx.version == version && a.now().Before(idx.expires) {
			sub := idx.byWho[who]
			a.mu.RUnlock()
			return sub, true
		}
	}
	a.mu.RUnlock()
	e, ok := a.entries.Get(answerKey{sc, who})
	if !ok || e.version != version {
		return nil, false
	}
	return e.sub, true
}

// state returns the state of a project's environment, creating it. The
// caller holds the write lock.
func (a *answers) state(sc scope) *scopeState {
	st := a.scopes[sc]
	if st == nil {
		if len(a.scopes) >= a.maxScopes {
			clear(a.scopes)
			a.indexed = 0
			a.counter++
			a.floor = a.counter
		}
		st = &scopeState{version: a.floor}
		a.scopes[sc] = st
	}
	return st
}

// miss counts an answer read from the database and returns the version to
// read it under, and whether the caller should build the index now: after
// indexAfterMisses misses, or at once when an index had expired (it was
// hot). One build at a time.
func (a *answers) miss(sc scope) (version uint64, build bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(sc)
	st.misses++
	idx := st.index
	switch {
	case idx != nil && (idx.building || a.now().Before(idx.expires)):
		return st.version, false // being built, or built since the caller looked
	case idx != nil:
		a.dropIndex(st) // expired: it was in use, build it again at once
	case st.misses < indexAfterMisses:
		return st.version, false
	}
	st.index = &index{version: st.version, building: true}
	return st.version, true
}

// putIndex installs an index read under version at the time at, unless the
// mirror changed since.
func (a *answers) putIndex(sc scope, version uint64, byWho map[billing.Who]*billing.Subscription, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.scopes[sc]
	if st == nil || st.index == nil || !st.index.building || st.index.version != version {
		return
	}
	if st.version != version || len(byWho) > a.maxIndexed {
		st.index = nil
		return
	}
	if a.indexed+len(byWho) > a.maxIndexed {
		for _, other := range a.scopes {
			a.dropIndex(other)
		}
	}
	st.index = &index{version: version, expires: at.Add(a.ttl), byWho: byWho}
	a.indexed += len(byWho)
}

// indexFailed forgets a build that did not finish, so that a later miss may
// try again.
func (a *answers) indexFailed(sc scope, version uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.scopes[sc]; st != nil && st.index != nil && st.index.building && st.index.version == version {
		st.index = nil
	}
}

// dropIndex forgets a built index. The caller holds the write lock.
func (a *answers) dropIndex(st *scopeState) {
	if st.index != nil && !st.index.building {
		a.indexed -= len(st.index.byWho)
		st.index = nil
	}
}

// put remembers an answer read under version; if the mirror changed since,
// the answer is dropped.
func (a *answers) put(sc scope, who billing.Who, version uint64, sub *billing.Subscription) {
	a.mu.RLock()
	current := a.floor
	if st := a.scopes[sc]; st != nil {
		current = st.version
	}
	a.mu.RUnlock()
	if current == version {
		a.entries.Put(answerKey{sc, who}, answer{sub: sub, version: version})
	}
}

// invalidate gives a project's environment a new version: every answer and
// index read before is dropped at once.
func (a *answers) invalidate(sc scope) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(sc)
	a.counter++
	st.version = a.counter
	st.misses = 0
	a.dropIndex(st)
}

// Package bus announces changes to the caches that hold what changed: on
// this instance at once, and through Redis pub/sub on every other instance
// (best effort; every cache's expiry bounds what a lost message costs).
//
// A change is named by a typed Key. Writers publish the keys of what they
// changed right after it is committed; caches subscribe and drop what a key
// names. Adding a kind of change is a new Kind constant and, for its
// subscribers, a case in their switch; unknown kinds are ignored, so that
// instances of different versions can share one channel.
package bus

import (
	"context"
	"sync"

	billing "github.com/stackfordevs/billing"
)

// Kind says what kind of state a Key names.
type Kind string

// The kinds of changes announced.
const (
	// Mirror is any change to the mirror of a project's environment
	// (ProjectID, Environment): what its access answers are made of.
	Mirror Kind = "mirror"
	// Project is a change of a project's credentials (ProjectID, APIKey).
	Project Kind = "project"
	// StripeSettings is a change of a project's Stripe keys for an
	// environment (ProjectID, Environment).
	StripeSettings Kind = "stripe_settings"
	// AuthSettings is a change of how a project's buyer tokens are
	// verified (ProjectID).
	AuthSettings Kind = "auth_settings"
)

// Key names one changed piece of state. Which fields are set depends on
// Kind; build keys with the functions below.
type Key struct {
	Kind        Kind                `json:"kind"`
	ProjectID   string              `json:"project_id"`
	Environment billing.Environment `json:"environment,omitempty"`
	// APIKey is the project's public API key id (x-api-key), with Project.
	APIKey string `json:"api_key,omitempty"`
}

// MirrorKey names the mirror of a project's environment.
func MirrorKey(projectID string, env billing.Environment) Key {
	return Key{Kind: Mirror, ProjectID: projectID, Environment: env}
}

// ProjectKey names a project's credentials, found by id or by API key.
func ProjectKey(projectID, apiKey string) Key {
	return Key{Kind: Project, ProjectID: projectID, APIKey: apiKey}
}

// StripeSettingsKey names a project's Stripe settings for an environment.
func StripeSettingsKey(projectID string, env billing.Environment) Key {
	return Key{Kind: StripeSettings, ProjectID: projectID, Environment: env}
}

// AuthSettingsKey names a project's buyer-token settings.
func AuthSettingsKey(projectID string) Key {
	return Key{Kind: AuthSettings, ProjectID: projectID}
}

// Remote carries keys to the other instances (Redis).
type Remote interface {
	Publish(ctx context.Context, k Key)
	Subscribe(fn func(Key))
}

// Bus hands every published key to this instance's subscribers at once and
// to the remote, when there is one, whose keys (from any instance, this one
// included) it hands to the subscribers too. It is safe for concurrent use;
// the zero value is not: use New.
type Bus struct {
	remote Remote

	mu   sync.RWMutex
	subs []func(Key)
}

// New returns a bus for one instance; remote may be nil (one instance, or no
// Redis: other instances then catch up within their caches' expiry).
func New(remote Remote) *Bus {
	b := &Bus{remote: remote}
	if remote != nil {
		remote.Subscribe(b.deliver)
	}
	return b
}

// Subscribe adds fn to the functions called with every key. fn must be
// quick and must not publish.
func (b *Bus) Subscribe(fn func(Key)) {
	b.mu.Lock()
	b.subs = append(b.subs, fn)
	b.mu.Unlock()
}

// Publish hands keys to this instance's subscribers, then to the remote.
func (b *Bus) Publish(ctx context.Context, keys ...Key) {
	for _, k := range keys {
		b.deliver(k)
		if b.remote != nil {
			b.remote.Publish(ctx, k)
		}
	}
}

func (b *Bus) deliver(k Key) {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, fn := range subs {
		fn(k)
	}
}

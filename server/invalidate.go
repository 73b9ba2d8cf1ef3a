package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
)

// Keys of the changes the server makes to what it caches. Mirror changes
// are announced by the mirror itself.

func projectKeyOf(p *billing.Project) bus.Key { return bus.ProjectKey(p.ID, p.APIKey) }

func stripeKeyOf(projectID string, env billing.Environment) bus.Key {
	return bus.StripeSettingsKey(projectID, env)
}

func authKeyOf(projectID string) bus.Key { return bus.AuthSettingsKey(projectID) }

// changed announces keys on the bus: this instance's caches drop what they
// name at once, the other instances' through Redis when it is configured.
func (s *Server) changed(ctx context.Context, keys ...bus.Key) {
	s.bus.Publish(context.WithoutCancel(ctx), keys...)
}

// invalidate drops what one key names from the server's caches; other kinds
// are someone else's.
func (s *Server) invalidate(k bus.Key) {
	switch k.Kind {
	case bus.Project:
		s.projectsByID.delete(k.ProjectID)
		s.projects.delete(k.APIKey)
	case bus.StripeSettings:
		s.stripeCfg.delete(envKey{k.ProjectID, k.Environment})
	case bus.AuthSettings:
		s.authCfg.delete(k.ProjectID)
	}
}

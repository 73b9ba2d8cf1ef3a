package server

import (
	"context"
	"strings"

	billing "github.com/stackfordevs/billing"
)

// Bus carries cache invalidations to the other instances (Redis pub/sub);
// without one, only this instance's caches are cleared at once and the
// others catch up within their TTLs.
type Bus interface {
	Publish(ctx context.Context, key string)
	Subscribe(fn func(key string))
}

// Invalidation keys: what changed, so that every instance drops what it
// cached of it.
func mirrorKey(projectID string, env billing.Environment) string {
	return "mirror|" + projectID + "|" + string(env)
}

func projectKeyOf(p *billing.Project) string { return "project|" + p.ID + "|" + p.APIKey }

func stripeKeyOf(projectID string, env billing.Environment) string {
	return "stripe|" + projectID + "|" + string(env)
}

func authKeyOf(projectID string) string { return "auth|" + projectID }

// changed clears this instance's caches of what the keys name and tells
// the other instances.
func (s *Server) changed(ctx context.Context, keys ...string) {
	for _, k := range keys {
		s.invalidate(k)
		if s.bus != nil {
			s.bus.Publish(ctx, k)
		}
	}
}

// invalidate clears what one key names; unknown keys are ignored.
func (s *Server) invalidate(key string) {
	parts := strings.Split(key, "|")
	switch {
	case len(parts) == 3 && parts[0] == "mirror":
		s.subs.invalidate(envKey{parts[1], billing.Environment(parts[2])})
	case len(parts) == 3 && parts[0] == "project":
		s.projectsByID.delete(parts[1])
		s.projects.delete(parts[2])
	case len(parts) == 3 && parts[0] == "stripe":
		s.stripeCfg.delete(envKey{parts[1], billing.Environment(parts[2])})
	case len(parts) == 2 && parts[0] == "auth":
		s.authCfg.delete(parts[1])
	}
}

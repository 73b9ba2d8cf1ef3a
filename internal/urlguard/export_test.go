package urlguard

import "net/netip"

// WithBlocked returns g refusing exactly the addresses blocked reports.
func WithBlocked(g *Guard, blocked func(netip.Addr) bool) *Guard {
	g.blocked = blocked
	return g
}

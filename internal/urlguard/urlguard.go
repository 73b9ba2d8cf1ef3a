// Package urlguard keeps the requests the service makes to URLs that
// projects configure (JWKS endpoints, the event endpoints of tenants'
// applications) away from the service's own network: loopback, private,
// link-local (cloud metadata at 169.254.169.254), shared (CGNAT),
// multicast, unspecified and reserved addresses are refused. The check is
// made on the address each connection actually dials, after DNS
// resolution, so it also holds on redirects and against DNS answers that
// change between a check and a fetch. Development may allow everything
// (BILLING_ALLOW_PRIVATE_URLS=true).
package urlguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by the errors of refused addresses; test with
// errors.Is.
var ErrBlocked = errors.New("address not allowed")

// maxRedirects is how many redirects a guarded client follows.
const maxRedirects = 3

// Guard decides which addresses outgoing requests may reach. The zero
// value refuses every blocked address; it is safe for concurrent use.
type Guard struct {
	// AllowPrivate allows every address, for development.
	AllowPrivate bool
	// Resolver resolves host names for CheckURL; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver

	// blocked, when set, replaces Blocked (tests).
	blocked func(netip.Addr) bool
}

// reserved are IPv4 and IPv6 ranges that the netip predicates do not
// cover and that no public service uses.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT; some clouds' metadata)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard
}

// Prefixes of IPv6 addresses that embed an IPv4 address.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Blocked reports whether ip is an address the guard refuses: loopback,
// private, link-local, multicast, unspecified, shared or reserved, also
// when written as an IPv4-mapped, NAT64 or 6to4 IPv6 address.
func Blocked(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return Blocked(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(ip):
			return Blocked(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (g *Guard) isBlocked(ip netip.Addr) bool {
	if g.AllowPrivate {
		return false
	}
	if g.blocked != nil {
		return g.blocked(ip)
	}
	return Blocked(ip)
}

// CheckURL checks a URL before it is stored: an absolute http or https URL
// with a host and no user information, whose host is not a refused address
// or a name such as localhost, and does not resolve only to refused
// addresses. A host that does not resolve now is accepted: every
// connection is checked again when it is made. The error is caller-safe.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return errors.New("must not carry a user name or password")
	}
	if g.AllowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".internal") || strings.HasSuffix(host, ".local") {
		return fmt.Errorf("must not name a local host (%w)", ErrBlocked)
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if g.isBlocked(ip) {
			return fmt.Errorf("must not point to a loopback, private, link-local or metadata address (%w)", ErrBlocked)
		}
		return nil
	}
	if numericHost(host) {
		// 0x7f000001, 2130706433, 127.1: forms some resolvers read as
		// addresses.
		return fmt.Errorf("must name a host, or an IP address in its usual form (%w)", ErrBlocked)
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if !g.isBlocked(a) {
			return nil
		}
	}
	return fmt.Errorf("must not resolve to a loopback, private, link-local or metadata address (%w)", ErrBlocked)
}

// numericHost reports whether every label of host is a number (decimal,
// octal or hex), which is an address to some resolvers and never a name.
func numericHost(host string) bool {
	for _, label := range strings.Split(host, ".") {
		if _, err := strconv.ParseUint(label, 0, 64); err != nil {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control function that refuses to connect to a
// blocked address. It sees each address the dialer tries, after
// resolution.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("urlguard: %s: %w", address, ErrBlocked)
	}
	if g.isBlocked(ap.Addr()) {
		return fmt.Errorf("urlguard: connection to %s refused: %w", ap.Addr(), ErrBlocked)
	}
	return nil
}

// Transport returns an HTTP transport whose every connection goes through
// the guard. It ignores proxy settings of the environment, since a proxy
// would make the connection on the service's behalf.
func (g *Guard) Transport(timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.Control}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an HTTP client over Transport with timeout bounding each
// request, which follows at most three redirects, each to an http or https
// URL (its connection is checked like the first).
func (g *Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: g.Transport(timeout),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("urlguard: too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("urlguard: redirect to %s: %w", req.URL.Scheme, ErrBlocked)
			}
			return nil
		},
	}
}

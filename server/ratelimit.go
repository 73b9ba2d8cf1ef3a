package server

import (
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/ratelimit"
)

// limitClass returns "create" or "query" for a rate-limited route, or ""
// for routes that are not limited (webhooks, setup, usage, admin, health).
func limitClass(method, path string) string {
	limited := strings.HasPrefix(path, "/v1/customer/") ||
		(strings.HasPrefix(path, "/v1/stripe/") && !strings.HasPrefix(path, "/v1/stripe/webhook/"))
	switch {
	case !limited:
		return ""
	case method == "GET" || method == "HEAD":
		return "query"
	}
	return "create"
}

// rateLimitMiddleware enforces each project's and environment's hourly
// budgets. It runs after authentication and before anything is sent to
// Stripe.
func (s *Server) rateLimitMiddleware(lim ratelimit.Limiter, createsPerHour, queriesPerHour int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			class := limitClass(c.Request().Method, c.Path())
			p := projectFromContext(c.Request().Context())
			if class == "" || p == nil {
				return next(c)
			}
			perHour := queriesPerHour
			if class == "create" {
				perHour = createsPerHour
			}
			env := requestEnv(c)
			// A Redis failure is logged and counted by the limiter; its
			// answer is then the in-process one, and the call is served.
			d, _ := lim.Allow(c.Request().Context(), p.ID+":"+string(env)+":"+class, perHour)
			h := c.Response().Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
			h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter.Seconds())))
			if !d.Allowed {
				if s.metrics != nil {
					s.metrics.RateLimited.WithLabelValues(class).Inc()
				}
				return &billing.Error{
					Code:       billing.ERATELIMITED,
					Message:    "Rate limit of " + strconv.Itoa(perHour) + " " + class + " calls per hour exceeded for this project and environment.",
					RetryAfter: max(d.RetryAfter, 1e9),
				}
			}
			return next(c)
		}
	}
}

func ceilSeconds(s float64) int {
	n := int(s)
	if float64(n) < s {
		n++
	}
	return n
}

package server

import (
	"context"
	"strconv"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/routes"
)

// BudgetClass is an hourly rate-limit budget of each project and
// environment. An operation draws on one by naming it in its x-rate-limit
// extension in openapi.yaml; the service refuses to start when an operation
// names a class that is not in BudgetClasses.
type BudgetClass struct {
	// Name is the x-rate-limit value.
	Name string
	// PerHour is the default number of calls per hour.
	PerHour int
	// Env is the environment variable that sets PerHour.
	Env string
	// Calls says what is counted, in the 429 message ("create calls").
	Calls string
}

// BudgetClasses returns the budget classes the service knows. A new class
// is a row here and its name in the x-rate-limit of its operations;
// Config.Budgets sets the numbers.
func BudgetClasses() []BudgetClass {
	return []BudgetClass{
		{Name: "create", PerHour: 1000, Env: "BILLING_RATE_LIMIT_CREATES_PER_HOUR", Calls: "create calls"},
		{Name: "query", PerHour: 5000, Env: "BILLING_RATE_LIMIT_QUERIES_PER_HOUR", Calls: "query calls"},
	}
}

// budgetTable is the per-hour budget and wording of each class.
type budgetTable map[string]BudgetClass

// newBudgetTable returns the classes with the numbers of perHour applied
// over their defaults.
func newBudgetTable(perHour map[string]int) budgetTable {
	t := budgetTable{}
	for _, b := range BudgetClasses() {
		if n := perHour[b.Name]; n > 0 {
			b.PerHour = n
		}
		t[b.Name] = b
	}
	return t
}

func (t budgetTable) names() []string {
	out := make([]string, 0, len(t))
	for name := range t {
		out = append(out, name)
	}
	return out
}

// budget returns a project's hourly budget of a class. Per-project
// overrides apply here.
func (s *Server) budget(_ context.Context, _ *billing.Project, class string) BudgetClass {
	return s.budgets[class]
}

// rateLimitMiddleware enforces each project's and environment's hourly
// budget of the class the matched operation names in openapi.yaml. It runs
// after authentication and before anything is sent to Stripe.
func (s *Server) rateLimitMiddleware(lim ratelimit.Limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r, ok := s.routes.Lookup(c.Request().Method, c.Path())
			p := projectFromContext(c.Request().Context())
			if !ok || r.Budget == routes.NoBudget || p == nil {
				return next(c)
			}
			b := s.budget(c.Request().Context(), p, r.Budget)
			env := requestEnv(c)
			// A Redis failure is logged and counted by the limiter; its
			// answer is then the in-process one, and the call is served.
			d, _ := lim.Allow(c.Request().Context(), p.ID+":"+string(env)+":"+r.Budget, b.PerHour)
			h := c.Response().Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
			h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter.Seconds())))
			if !d.Allowed {
				if s.metrics != nil {
					s.metrics.RateLimited.WithLabelValues(r.Budget).Inc()
				}
				return &billing.Error{
					Code:       billing.ERATELIMITED,
					Message:    "Rate limit of " + strconv.Itoa(b.PerHour) + " " + b.Calls + " per hour exceeded for this project and environment.",
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

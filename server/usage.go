package server

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"
	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

// GetUsage returns the project's counted calls per day.
func (s *Server) GetUsage(ctx context.Context, req gen.GetUsageRequestObject) (gen.GetUsageResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.usage(ctx, p.ID, req.Params.Environment, req.Params.From, req.Params.To)
	if err != nil {
		return nil, err
	}
	return gen.GetUsage200JSONResponse(list), nil
}

// AdminGetUsage returns every project's counted calls per day.
func (s *Server) AdminGetUsage(ctx context.Context, req gen.AdminGetUsageRequestObject) (gen.AdminGetUsageResponseObject, error) {
	list, err := s.usage(ctx, deref(req.Params.ProjectId), req.Params.Environment, req.Params.From, req.Params.To)
	if err != nil {
		return nil, err
	}
	return gen.AdminGetUsage200JSONResponse(list), nil
}

const maxUsageDays = 366

func (s *Server) usage(ctx context.Context, projectID string, env *gen.EnvironmentFilter, from, to *openapi_types.Date) (gen.UsageList, error) {
	today := s.now().UTC().Truncate(24 * time.Hour)
	end := today
	if to != nil {
		end = to.Time
	}
	start := end.AddDate(0, 0, -30)
	if from != nil {
		start = from.Time
	}
	if end.Before(start) {
		return gen.UsageList{}, billing.FieldErrorf("to", "to: must not be before from")
	}
	if end.Sub(start) > maxUsageDays*24*time.Hour {
		return gen.UsageList{}, billing.FieldErrorf("from", "from: the range may span at most %d days", maxUsageDays)
	}
	var e billing.Environment
	if env != nil {
		e = billing.Environment(*env)
	}
	counts, err := s.store.ListUsage(ctx, projectID, e, start.Format(time.DateOnly), end.Format(time.DateOnly))
	if err != nil {
		return gen.UsageList{}, err
	}
	out := gen.UsageList{Object: gen.UsageListObjectList, Data: make([]gen.UsageCount, 0, len(counts))}
	for _, c := range counts {
		day, _ := time.Parse(time.DateOnly, c.Day)
		out.Data = append(out.Data, gen.UsageCount{
			ProjectId:   c.ProjectID,
			Environment: gen.Environment(c.Environment),
			Endpoint:    c.Endpoint,
			StatusClass: gen.UsageCountStatusClass(c.StatusClass),
			Day:         openapi_types.Date{Time: day},
			Count:       c.Count,
		})
	}
	return out, nil
}

// AdminSyncProject backfills the project's mirror from Stripe.
func (s *Server) AdminSyncProject(ctx context.Context, req gen.AdminSyncProjectRequestObject) (gen.AdminSyncProjectResponseObject, error) {
	p, err := s.store.FindProjectByID(ctx, req.ProjectId)
	if err != nil {
		return nil, notFound(err, "projectId", "No such project: "+req.ProjectId+".")
	}
	n, err := s.mirror.Resync(ctx, p.ID, envOf(req.Params.Environment), nil)
	if err != nil {
		return nil, err
	}
	return gen.AdminSyncProject200JSONResponse{Customers: n.Customers, Products: n.Products, Prices: n.Prices, Subscriptions: n.Subscriptions}, nil
}

// UsageRecorder counts calls; Record must not block on I/O.
type UsageRecorder interface {
	Record(projectID string, env billing.Environment, endpoint string, status int)
}

// usageMiddleware counts each authenticated project call after it is answered.
func usageMiddleware(rec UsageRecorder) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			p := projectFromContext(c.Request().Context())
			if p == nil {
				return err
			}
			status := c.Response().Status
			if err != nil {
				status = ErrorStatus(toBillingError(err).Code)
			}
			rec.Record(p.ID, requestEnv(c), c.Request().Method+" "+c.Path(), status)
			return err
		}
	}
}

// requestEnv returns the environment a request names, test by default.
func requestEnv(c echo.Context) billing.Environment {
	if c.QueryParam("environment") == string(billing.EnvLive) {
		return billing.EnvLive
	}
	return billing.EnvTest
}

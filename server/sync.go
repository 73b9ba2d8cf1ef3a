package server

import (
	"context"
	"net/url"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

// SyncJobs starts and reads the jobs that resync a project's mirror from
// Stripe (internal/jobs.Service).
type SyncJobs interface {
	// Start queues a resync of the project's environment started by origin,
	// or returns the one already queued or running. An unknown project is
	// ENOTFOUND; a project without Stripe keys for env is EFORBIDDEN.
	Start(ctx context.Context, projectID string, env billing.Environment, origin string) (*billing.SyncJob, error)
	// Find returns the project's job; an unknown job or another project's
	// is ENOTFOUND.
	Find(ctx context.Context, projectID, id string) (*billing.SyncJob, error)
}

// StartSync starts a resync of the authenticated project's mirror.
func (s *Server) StartSync(ctx context.Context, req gen.StartSyncRequestObject) (gen.StartSyncResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	job, err := s.jobs.Start(ctx, p.ID, envOf(req.Params.Environment), billing.SyncByAPI)
	if err != nil {
		return nil, err
	}
	return gen.StartSync202JSONResponse{Body: syncJob(job),
		Headers: gen.StartSync202ResponseHeaders{Location: "/v1/sync/" + url.PathEscape(job.ID)}}, nil
}

// GetSyncJob returns one of the authenticated project's sync jobs.
func (s *Server) GetSyncJob(ctx context.Context, req gen.GetSyncJobRequestObject) (gen.GetSyncJobResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	job, err := s.jobs.Find(ctx, p.ID, req.JobId)
	if err != nil {
		return nil, err
	}
	return gen.GetSyncJob200JSONResponse(syncJob(job)), nil
}

// AdminSyncProject starts a resync of any project's mirror.
func (s *Server) AdminSyncProject(ctx context.Context, req gen.AdminSyncProjectRequestObject) (gen.AdminSyncProjectResponseObject, error) {
	job, err := s.jobs.Start(ctx, req.ProjectId, envOf(req.Params.Environment), billing.SyncByAdmin)
	if err != nil {
		return nil, notFound(err, "projectId", "No such project: "+req.ProjectId+".")
	}
	return gen.AdminSyncProject202JSONResponse{Body: syncJob(job), Headers: gen.AdminSyncProject202ResponseHeaders{
		Location: "/v1/admin/projects/" + url.PathEscape(job.ProjectID) + "/sync/" + url.PathEscape(job.ID)}}, nil
}

// AdminGetSyncJob returns one of a project's sync jobs.
func (s *Server) AdminGetSyncJob(ctx context.Context, req gen.AdminGetSyncJobRequestObject) (gen.AdminGetSyncJobResponseObject, error) {
	job, err := s.jobs.Find(ctx, req.ProjectId, req.JobId)
	if err != nil {
		return nil, err
	}
	return gen.AdminGetSyncJob200JSONResponse(syncJob(job)), nil
}

// syncJob is the API's form of a job.
func syncJob(j *billing.SyncJob) gen.SyncJob {
	out := gen.SyncJob{
		Id:          j.ID,
		Object:      gen.SyncJobObjectSyncJob,
		ProjectId:   j.ProjectID,
		Environment: gen.Environment(j.Environment),
		Origin:      gen.SyncJobOrigin(j.Origin),
		State:       gen.SyncJobState(j.State),
		Counts: gen.SyncCounts{Customers: j.Counts.Customers, Products: j.Counts.Products,
			Prices: j.Counts.Prices, Subscriptions: j.Counts.Subscriptions},
		Attempts:  j.Attempts,
		CreatedAt: j.CreatedAt,
	}
	if j.Error != "" {
		out.Error = &j.Error
	}
	if !j.StartedAt.IsZero() {
		out.StartedAt = &j.StartedAt
	}
	if !j.FinishedAt.IsZero() {
		out.FinishedAt = &j.FinishedAt
	}
	return out
}

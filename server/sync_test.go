package server_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// awaitSyncJob asks get for the job until it is done, and returns it.
func awaitSyncJob(t testing.TB, get func() (*gen.SyncJob, response, error)) gen.SyncJob {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, resp, err := get()
		if err != nil || job == nil {
			t.Fatalf("get sync job: %v %s", err, body(resp))
		}
		if job.State == gen.SyncJobStateSucceeded || job.State == gen.SyncJobStateFailed {
			return *job
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync job %s still %s after 30s", job.Id, job.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminSync starts a sync through the admin API and waits until it is done.
func (e *testEnv) adminSync(t testing.TB, projectID string, params *gen.AdminSyncProjectParams) gen.SyncJob {
	t.Helper()
	ctx := context.Background()
	resp, err := e.API.AdminSyncProjectWithResponse(ctx, projectID, params, admin)
	if err != nil || resp.JSON202 == nil {
		t.Fatalf("admin sync: %v %s", err, body(resp))
	}
	if got, want := resp.HTTPResponse.Header.Get("Location"), "/v1/admin/projects/"+projectID+"/sync/"+resp.JSON202.Id; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	return awaitSyncJob(t, func() (*gen.SyncJob, response, error) {
		r, err := e.API.AdminGetSyncJobWithResponse(ctx, projectID, resp.JSON202.Id, admin)
		if r == nil {
			return nil, r, err
		}
		return r.JSON200, r, err
	})
}

// startSync starts a sync of the project's environment and returns the job
// as the answer shows it.
func (p *testProject) startSync(t testing.TB, env gen.Environment) gen.SyncJob {
	t.Helper()
	resp, err := p.e.API.StartSyncWithResponse(context.Background(), &gen.StartSyncParams{Environment: &env}, p.creds)
	if err != nil || resp.JSON202 == nil {
		t.Fatalf("start sync: %v %s", err, body(resp))
	}
	if got, want := resp.HTTPResponse.Header.Get("Location"), "/v1/sync/"+resp.JSON202.Id; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	return *resp.JSON202
}

// getSyncJob returns the project's job id.
func (p *testProject) getSyncJob(t testing.TB, id string) gen.SyncJob {
	t.Helper()
	resp, err := p.e.API.GetSyncJobWithResponse(context.Background(), id, p.creds)
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("get sync job: %v %s", err, body(resp))
	}
	return *resp.JSON200
}

func (p *testProject) awaitSync(t testing.TB, id string) gen.SyncJob {
	t.Helper()
	return awaitSyncJob(t, func() (*gen.SyncJob, response, error) {
		r, err := p.e.API.GetSyncJobWithResponse(context.Background(), id, p.creds)
		if r == nil {
			return nil, r, err
		}
		return r.JSON200, r, err
	})
}

func TestSyncJob(t *testing.T) {
	storetest.EachDB(t, newKeyring(t), func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fs := newFakeStripe(t)
		gs := stripetest.NewGate(t, "/v1/subscriptions", fs.Config.Handler)
		e := newTestEnv(t, db, withStripe(gs.URL, stripeadapter.Config{MaxNetworkRetries: -1}))
		p := e.newProject(t, "")
		other := e.newProject(t, "")
		stripeAccount(t, fs, 30, 40)
		// An answer cached before the sync.
		if got := p.currentSubscription(t, "sync011@example.com"); got != nil {
			t.Fatalf("before the sync: got %+v, want none", got)
		}

		before := time.Now().Add(-time.Second)
		job := p.startSync(t, gen.EnvironmentTest)
		if job.Object != gen.SyncJobObjectSyncJob || job.ProjectId != p.ProjectID || job.Environment != gen.EnvironmentTest ||
			job.Origin != gen.SyncJobOriginAPI || job.State != gen.SyncJobStateQueued || job.CreatedAt.Before(before) ||
			job.FinishedAt != nil || job.Error != nil || !strings.HasPrefix(job.Id, "sync_") {
			t.Errorf("got %+v, want a queued api job of the project", job)
		}
		gs.WaitHeld(t)

		t.Run("Running", func(t *testing.T) {
			got := p.getSyncJob(t, job.Id)
			if got.State != gen.SyncJobStateRunning || got.StartedAt == nil || got.Attempts != 1 || got.FinishedAt != nil {
				t.Errorf("got %+v, want running, started once", got)
			}
		})
		t.Run("OneAtATime", func(t *testing.T) {
			if again := p.startSync(t, gen.EnvironmentTest); again.Id != job.Id || again.State != gen.SyncJobStateRunning {
				t.Errorf("second start: got %+v, want the running job %s", again, job.Id)
			}
			resp, err := e.API.AdminSyncProjectWithResponse(ctx, p.ProjectID, &gen.AdminSyncProjectParams{}, admin)
			if err != nil || resp.JSON202 == nil || resp.JSON202.Id != job.Id {
				t.Errorf("admin start: got %v %s, want the running job %s", err, body(resp), job.Id)
			}
		})
		t.Run("ErrOtherProject", func(t *testing.T) {
			resp, err := e.API.GetSyncJobWithResponse(ctx, job.Id, other.creds)
			if err != nil || resp.StatusCode() != http.StatusNotFound {
				t.Errorf("another project's job: got %v %s, want 404", err, body(resp))
			}
			aresp, err := e.API.AdminGetSyncJobWithResponse(ctx, other.ProjectID, job.Id, admin)
			if err != nil || aresp.StatusCode() != http.StatusNotFound {
				t.Errorf("admin, under another project: got %v %s, want 404", err, body(aresp))
			}
		})

		gs.Open()
		done := p.awaitSync(t, job.Id)
		t.Run("Succeeded", func(t *testing.T) {
			want := gen.SyncCounts{Customers: 30, Products: 2, Prices: 2, Subscriptions: 40}
			if done.State != gen.SyncJobStateSucceeded || done.Counts != want || done.Error != nil || done.Attempts != 1 ||
				done.StartedAt == nil || done.FinishedAt == nil || done.FinishedAt.Before(*done.StartedAt) {
				t.Errorf("got %+v, want succeeded with %+v", done, want)
			}
			if s := e.subscription(t, p.ProjectID, "sub_sync011"); s == nil || s.Status != "active" {
				t.Errorf("sub_sync011: got %+v, want it in the mirror", s)
			}
			if got := p.currentSubscription(t, "sync011@example.com"); got == nil || got.Id != "sub_sync011" {
				t.Errorf("after the sync: got %+v, want sub_sync011 at once", got)
			}
			aresp, err := e.API.AdminGetSyncJobWithResponse(ctx, p.ProjectID, job.Id, admin)
			if err != nil || aresp.JSON200 == nil || !reflect.DeepEqual(*aresp.JSON200, done) {
				t.Errorf("admin view: got %v %s, want %+v", err, body(aresp), done)
			}
		})
		t.Run("Again", func(t *testing.T) {
			next := p.startSync(t, gen.EnvironmentTest)
			if next.Id == job.Id {
				t.Fatal("a finished job was answered as running")
			}
			if got := p.awaitSync(t, next.Id); got.State != gen.SyncJobStateSucceeded {
				t.Errorf("got %+v", got)
			}
		})
		t.Run("Failed", func(t *testing.T) {
			fs.fail(http.StatusInternalServerError)
			defer fs.fail(0)
			got := p.awaitSync(t, p.startSync(t, gen.EnvironmentTest).Id)
			if got.State != gen.SyncJobStateFailed || got.Error == nil || *got.Error == "" || got.FinishedAt == nil {
				t.Errorf("got %+v, want failed with a reason", got)
			}
		})
		t.Run("ErrNotConfigured", func(t *testing.T) {
			live := gen.EnvironmentLive
			resp, err := e.API.StartSyncWithResponse(ctx, &gen.StartSyncParams{Environment: &live}, p.creds)
			if err != nil || resp.StatusCode() != http.StatusForbidden {
				t.Errorf("got %v %s, want 403", err, body(resp))
			}
		})
		t.Run("ErrEnvironment", func(t *testing.T) {
			resp, b := e.do(t, http.MethodPost, "/v1/sync?environment=prod", p.headers(), nil)
			wantError(t, resp, b, http.StatusBadRequest, "environment")
		})
		t.Run("ErrUnknownJob", func(t *testing.T) {
			resp, err := e.API.GetSyncJobWithResponse(ctx, "sync_missing", p.creds)
			if err != nil || resp.StatusCode() != http.StatusNotFound {
				t.Errorf("got %v %s, want 404", err, body(resp))
			}
		})
		t.Run("ErrCredentials", func(t *testing.T) {
			resp, err := e.API.StartSyncWithResponse(ctx, &gen.StartSyncParams{}, admin)
			if err != nil || resp.StatusCode() != http.StatusUnauthorized {
				t.Errorf("start with the admin token: got %v %s, want 401", err, body(resp))
			}
			gresp, err := e.API.GetSyncJobWithResponse(ctx, job.Id)
			if err != nil || gresp.StatusCode() != http.StatusUnauthorized {
				t.Errorf("get without credentials: got %v %s, want 401", err, body(gresp))
			}
			aresp, err := e.API.AdminGetSyncJobWithResponse(ctx, p.ProjectID, job.Id, p.creds)
			if err != nil || aresp.StatusCode() != http.StatusUnauthorized {
				t.Errorf("admin get with project credentials: got %v %s, want 401", err, body(aresp))
			}
		})
		if jobs, err := db.FindSyncJob(ctx, job.Id); err != nil || jobs.Origin != billing.SyncByAPI {
			t.Errorf("stored: got %+v, %v", jobs, err)
		}
	})
}

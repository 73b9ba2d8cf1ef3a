package store

import (
	"context"
	"encoding/json"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type tenantRow struct {
	ID        string
	Name      string
	CreatedAt int64
}

func (r tenantRow) tenant() *billing.Tenant {
	return &billing.Tenant{ID: r.ID, Name: r.Name, CreatedAt: fromMicros(r.CreatedAt)}
}

type projectRow struct {
	ID         string
	TenantID   string
	Name       string
	APIKey     string `gorm:"column:api_key"`
	SecretHash []byte
	CreatedAt  int64
	UpdatedAt  int64
}

func (r projectRow) project() *billing.Project {
	return &billing.Project{
		ID:         r.ID,
		TenantID:   r.TenantID,
		Name:       r.Name,
		APIKey:     r.APIKey,
		SecretHash: r.SecretHash,
		CreatedAt:  fromMicros(r.CreatedAt),
		UpdatedAt:  fromMicros(r.UpdatedAt),
	}
}

type auditRow struct {
	ID        int64
	TenantID  string
	ProjectID string
	Actor     string
	Action    string
	Detail    string
	CreatedAt int64
}

// scanOne runs q into dest and returns ENOTFOUND naming what when it finds
// no row.
func scanOne(q *gorm.DB, dest any, what string) error {
	res := q.Scan(dest)
	if res.Error != nil {
		return translate(res.Error, what)
	}
	if res.RowsAffected == 0 {
		return notFound(what)
	}
	return nil
}

// CreateTenant stores a new tenant with the ID the caller chose and sets its
// CreatedAt. It returns EINVALID without an ID and ECONFLICT when the ID is
// taken.
func (db *DB) CreateTenant(ctx context.Context, t *billing.Tenant) error {
	if t.ID == "" {
		return billing.FieldErrorf("id", "A tenant needs an ID.")
	}
	createdAt := db.nowMicros()
	err := db.transact(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Name, createdAt).Error
		if err != nil {
			return translate(err, "Tenant")
		}
		return db.audit(ctx, tx, t.ID, "", "tenant.create", map[string]string{"name": t.Name})
	})
	if err != nil {
		return translate(err, "Tenant")
	}
	t.CreatedAt = fromMicros(createdAt)
	return nil
}

// FindTenantByID returns a tenant, or ENOTFOUND.
func (db *DB) FindTenantByID(ctx context.Context, id string) (*billing.Tenant, error) {
	var row tenantRow
	err := scanOne(db.reader(ctx).Raw(`SELECT id, name, created_at FROM tenants WHERE id = ?`, id), &row, "Tenant")
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, noSuch("tenant", id)
	} else if err != nil {
		return nil, err
	}
	return row.tenant(), nil
}

// CreateProject stores a new project of an existing tenant with the ID,
// API key and secret hash the caller chose, and sets its timestamps. It
// returns ENOTFOUND when the tenant does not exist and ECONFLICT when the
// ID or the API key is taken.
func (db *DB) CreateProject(ctx context.Context, p *billing.Project) error {
	if p.ID == "" {
		return billing.FieldErrorf("id", "A project needs an ID.")
	} else if p.APIKey == "" {
		return billing.FieldErrorf("api_key", "A project needs an API key.")
	}
	now := db.nowMicros()
	err := db.transact(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Raw(`SELECT COUNT(*) FROM tenants WHERE id = ?`, p.TenantID).Scan(&n).Error; err != nil {
			return err
		} else if n == 0 {
			return noSuch("tenant", p.TenantID)
		}
		err := tx.Exec(`INSERT INTO projects (id, tenant_id, name, api_key, secret_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.TenantID, p.Name, p.APIKey, p.SecretHash, now, now).Error
		if err != nil {
			return translate(err, "Project")
		}
		return db.audit(ctx, tx, p.TenantID, p.ID, "project.create",
			map[string]string{"name": p.Name, "api_key": p.APIKey})
	})
	if err != nil {
		return translate(err, "Project")
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(now), fromMicros(now)
	return nil
}

const projectColumns = `id, tenant_id, name, api_key, secret_hash, created_at, updated_at`

// FindProjectByID returns a project, or ENOTFOUND.
func (db *DB) FindProjectByID(ctx context.Context, id string) (*billing.Project, error) {
	var row projectRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+projectColumns+` FROM projects WHERE id = ?`, id), &row, "Project")
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, noSuch("project", id)
	} else if err != nil {
		return nil, err
	}
	return row.project(), nil
}

// FindProjectByAPIKey returns the project whose public API key is key, or
// ENOTFOUND.
func (db *DB) FindProjectByAPIKey(ctx context.Context, key string) (*billing.Project, error) {
	var row projectRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+projectColumns+` FROM projects WHERE api_key = ?`, key), &row, "Project")
	if err != nil {
		return nil, err
	}
	return row.project(), nil
}

// UpdateProjectSecret replaces the hash of a project's secret key. It
// returns ENOTFOUND when the project does not exist.
func (db *DB) UpdateProjectSecret(ctx context.Context, projectID string, hash []byte) error {
	return db.transact(ctx, func(tx *gorm.DB) error {
		tenantID, err := projectTenant(tx, projectID)
		if err != nil {
			return err
		}
		err = tx.Exec(`UPDATE projects SET secret_hash = ?, updated_at = ? WHERE id = ?`,
			hash, db.nowMicros(), projectID).Error
		if err != nil {
			return translate(err, "Project")
		}
		return db.audit(ctx, tx, tenantID, projectID, "project.rotate_secret", nil)
	})
}

// projectTenant returns the tenant of a project, or ENOTFOUND.
func projectTenant(tx *gorm.DB, projectID string) (string, error) {
	var tenantID string
	err := scanOne(tx.Raw(`SELECT tenant_id FROM projects WHERE id = ?`, projectID), &tenantID, "Project")
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return "", noSuch("project", projectID)
	}
	return tenantID, err
}

// audit writes an audit_log row in tx. Detail is stored as JSON and must
// never hold a secret.
func (db *DB) audit(ctx context.Context, tx *gorm.DB, tenantID, projectID, action string, detail any) error {
	text := ""
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		text = string(b)
	}
	return tx.Exec(`INSERT INTO audit_log (tenant_id, project_id, actor, action, detail, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		tenantID, projectID, billing.ActorFromContext(ctx), action, text, db.nowMicros()).Error
}

// ListAudit returns the newest audit entries of a project, at most limit
// (1-1000, default 100). Tenant-level entries (tenant.create) have no
// project; ListTenantAudit returns them.
func (db *DB) ListAudit(ctx context.Context, projectID string, limit int) ([]billing.AuditEntry, error) {
	return db.listAudit(ctx, "project_id", projectID, limit)
}

// ListTenantAudit returns the newest audit entries of a tenant and all its
// projects, at most limit (1-1000, default 100).
func (db *DB) ListTenantAudit(ctx context.Context, tenantID string, limit int) ([]billing.AuditEntry, error) {
	return db.listAudit(ctx, "tenant_id", tenantID, limit)
}

func (db *DB) listAudit(ctx context.Context, column, value string, limit int) ([]billing.AuditEntry, error) {
	limit = clampLimit(limit, 100, 1000)
	var rows []auditRow
	err := db.reader(ctx).Raw(`SELECT id, tenant_id, project_id, actor, action, detail, created_at
		FROM audit_log WHERE `+column+` = ? ORDER BY id DESC LIMIT ?`, value, limit).Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "Audit log")
	}
	out := make([]billing.AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = billing.AuditEntry{
			ID:        r.ID,
			TenantID:  r.TenantID,
			ProjectID: r.ProjectID,
			Actor:     r.Actor,
			Action:    r.Action,
			Detail:    r.Detail,
			CreatedAt: fromMicros(r.CreatedAt),
		}
	}
	return out, nil
}

// clampLimit returns limit within 1..max, def when it is not positive.
func clampLimit(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

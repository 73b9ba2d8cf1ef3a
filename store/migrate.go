package store

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// migration is one step of the schema. Its statements run in order in one
// transaction; "{{blob}}" and "{{serial}}" stand for the types that differ
// between SQLite and PostgreSQL.
type migration struct {
	version    int
	name       string
	statements []string
}

// migrations is the schema history. Append only: a released step never
// changes.
//
// Times are BIGINT microseconds since the Unix epoch; event_at columns hold
// the Stripe event (or read) time that last wrote the row, truncated to the
// second. Emails are also kept trimmed and lower-cased in email_lower for
// case-insensitive lookups. The mirror tables are keyed by (project_id,
// environment, id); keys and indexes lead with their most selective column
// (an id or an email) so that lookups use the right index even before the
// database has statistics (PostgreSQL without autovacuum, fresh SQLite). The audit log and usage counts have no foreign
// key so that they outlive what they describe.
var migrations = []migration{{
	version: 1,
	name:    "initial schema",
	statements: []string{
		`CREATE TABLE tenants (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		`CREATE TABLE projects (
			id TEXT PRIMARY KEY,
			tenant_id TEXT NOT NULL REFERENCES tenants (id),
			name TEXT NOT NULL,
			api_key TEXT NOT NULL UNIQUE,
			secret_hash {{blob}},
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
		`CREATE INDEX projects_tenant_id ON projects (tenant_id)`,
		`CREATE TABLE stripe_settings (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			secret_key_enc TEXT NOT NULL,
			publishable_key TEXT NOT NULL,
			webhook_secret_enc TEXT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (project_id, environment)
		)`,
		`CREATE TABLE auth_settings (
			project_id TEXT PRIMARY KEY REFERENCES projects (id),
			jwks_url TEXT NOT NULL,
			hs256_secret_enc TEXT NOT NULL,
			issuer TEXT NOT NULL,
			audience TEXT NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
		`CREATE TABLE audit_log (
			id {{serial}},
			tenant_id TEXT NOT NULL,
			project_id TEXT NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			detail TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		`CREATE INDEX audit_log_project ON audit_log (project_id, id)`,
		`CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id)`,
		`CREATE TABLE customers (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			email TEXT NOT NULL,
			email_lower TEXT NOT NULL,
			name TEXT NOT NULL,
			description TEXT NOT NULL,
			phone TEXT NOT NULL,
			metadata TEXT NOT NULL,
			user_id TEXT NOT NULL,
			deleted BOOLEAN NOT NULL,
			stub BOOLEAN NOT NULL,
			created BIGINT NOT NULL,
			event_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE INDEX customers_created ON customers (project_id, environment, created, id)`,
		`CREATE INDEX customers_email ON customers (email_lower, project_id, environment, created, id)`,
		`CREATE TABLE checkout_sessions (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			user_id TEXT NOT NULL,
			mode TEXT NOT NULL,
			status TEXT NOT NULL,
			payment_status TEXT NOT NULL,
			customer_id TEXT NOT NULL,
			customer_email TEXT NOT NULL,
			subscription_id TEXT NOT NULL,
			payment_intent_id TEXT NOT NULL,
			amount_total BIGINT NOT NULL,
			currency TEXT NOT NULL,
			url TEXT NOT NULL,
			created BIGINT NOT NULL,
			event_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE TABLE payment_intents (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			user_id TEXT NOT NULL,
			customer_id TEXT NOT NULL,
			amount BIGINT NOT NULL,
			currency TEXT NOT NULL,
			description TEXT NOT NULL,
			receipt_email TEXT NOT NULL,
			status TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE TABLE subscriptions (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			customer_id TEXT NOT NULL,
			email TEXT NOT NULL,
			email_lower TEXT NOT NULL,
			user_id TEXT NOT NULL,
			price_id TEXT NOT NULL,
			product_id TEXT NOT NULL,
			plan_name TEXT NOT NULL,
			status TEXT NOT NULL,
			current_period_end BIGINT NOT NULL,
			cancel_at_period_end BOOLEAN NOT NULL,
			trial_end BIGINT,
			items TEXT NOT NULL,
			created BIGINT NOT NULL,
			event_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE INDEX subscriptions_email ON subscriptions (email_lower, project_id, environment)`,
		`CREATE INDEX subscriptions_customer ON subscriptions (customer_id, project_id, environment)`,
		`CREATE TABLE products (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			name TEXT NOT NULL,
			active BOOLEAN NOT NULL,
			deleted BOOLEAN NOT NULL,
			event_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE TABLE prices (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			product_id TEXT NOT NULL,
			nickname TEXT NOT NULL,
			active BOOLEAN NOT NULL,
			deleted BOOLEAN NOT NULL,
			event_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE TABLE webhook_events (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			id TEXT NOT NULL,
			type TEXT NOT NULL,
			api_version TEXT NOT NULL,
			created BIGINT NOT NULL,
			payload {{blob}} NOT NULL,
			status TEXT NOT NULL,
			error TEXT NOT NULL,
			received_at BIGINT NOT NULL,
			PRIMARY KEY (id, project_id, environment)
		)`,
		`CREATE INDEX webhook_events_created ON webhook_events (project_id, environment, created, id)`,
		`CREATE TABLE usage_counts (
			project_id TEXT NOT NULL,
			environment TEXT NOT NULL,
			endpoint TEXT NOT NULL,
			status_class TEXT NOT NULL,
			day TEXT NOT NULL,
			count BIGINT NOT NULL,
			PRIMARY KEY (project_id, environment, endpoint, status_class, day)
		)`,
		`CREATE INDEX usage_counts_day ON usage_counts (day)`,
	},
}, {
	version: 2,
	name:    "stripe settings: re-read objects named by events",
	statements: []string{
		`ALTER TABLE stripe_settings ADD COLUMN refetch_objects INTEGER NOT NULL DEFAULT 0`,
	},
}, {
	version: 3,
	name:    "sync jobs",
	statements: []string{
		// One row per resync of a project's mirror. A running job belongs
		// to owner until lease_until; at most one job per project and
		// environment is queued or running.
		`CREATE TABLE sync_jobs (
			id TEXT PRIMARY KEY,
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			origin TEXT NOT NULL,
			state TEXT NOT NULL,
			customers BIGINT NOT NULL,
			products BIGINT NOT NULL,
			prices BIGINT NOT NULL,
			subscriptions BIGINT NOT NULL,
			error TEXT NOT NULL,
			attempts INTEGER NOT NULL,
			owner TEXT NOT NULL,
			lease_until BIGINT NOT NULL,
			created_at BIGINT NOT NULL,
			started_at BIGINT NOT NULL,
			finished_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
		`CREATE UNIQUE INDEX sync_jobs_active ON sync_jobs (project_id, environment) WHERE state IN ('queued', 'running')`,
		`CREATE INDEX sync_jobs_project ON sync_jobs (project_id, environment, created_at)`,
		`CREATE INDEX sync_jobs_state ON sync_jobs (state, created_at)`,
	},
}, {
	version: 4,
	name:    "webhook events: expiry index",
	statements: []string{
		// Only the events the pruner may delete (see retention.go), so
		// that events kept past their time (failed ones) are never scanned
		// again.
		`CREATE INDEX webhook_events_expiry ON webhook_events (received_at)
			WHERE status IN ('applied', 'ignored')`,
	},
}, {
	version: 5,
	name:    "setup page sessions shared by every instance",
	statements: []string{
		`CREATE TABLE setup_sessions (
			token_hash {{blob}} NOT NULL PRIMARY KEY,
			project_id TEXT NOT NULL REFERENCES projects (id),
			fingerprint TEXT NOT NULL,
			expires_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		`CREATE INDEX setup_sessions_expires ON setup_sessions (expires_at)`,
	},
}, {
	version: 6,
	name:    "create intents recorded before the Stripe call",
	statements: []string{
		`CREATE TABLE create_intents (
			project_id TEXT NOT NULL REFERENCES projects (id),
			environment TEXT NOT NULL,
			idempotency_key TEXT NOT NULL,
			operation TEXT NOT NULL,
			fingerprint TEXT NOT NULL,
			user_id TEXT NOT NULL,
			state TEXT NOT NULL,
			object_id TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (idempotency_key, project_id, environment)
		)`,
		`CREATE INDEX create_intents_state ON create_intents (state, created_at)`,
		`CREATE INDEX create_intents_user ON create_intents (user_id, project_id, environment, operation)`,
	},
}, {
	version: 7,
	name:    "subscriptions: period start, cancellation times; lookups by owner; what the last write changed",
	statements: []string{
		`ALTER TABLE subscriptions ADD COLUMN current_period_start BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE subscriptions ADD COLUMN cancel_at BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE subscriptions ADD COLUMN canceled_at BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE subscriptions ADD COLUMN ended_at BIGINT NOT NULL DEFAULT 0`,
		`CREATE INDEX subscriptions_user ON subscriptions (user_id, project_id, environment)`,
		`CREATE INDEX customers_user ON customers (user_id, project_id, environment)`,
		// What the last write did to a row ('created', 'updated', 'deleted'
		// or '' for nothing) and the status before it, set by the write's
		// own statement so that it can report the change exactly.
		`ALTER TABLE subscriptions ADD COLUMN last_change TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE subscriptions ADD COLUMN previous_status TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE customers ADD COLUMN last_change TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE customers ADD COLUMN previous_status TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE checkout_sessions ADD COLUMN last_change TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE checkout_sessions ADD COLUMN previous_status TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE products ADD COLUMN last_change TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE products ADD COLUMN previous_status TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE prices ADD COLUMN last_change TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE prices ADD COLUMN previous_status TEXT NOT NULL DEFAULT ''`,
	},
}}

// migrateLock is the PostgreSQL advisory lock key that serialises
// migrations of one schema across processes.
const migrateLock = "billing.migrate"

// Migrate brings the schema up to date. It is idempotent, and safe when
// several processes run it at once: on PostgreSQL they queue on an advisory
// lock, on SQLite on the database's write lock.
func (db *DB) Migrate(ctx context.Context) error {
	err := db.write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if db.postgres {
			err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(CAST(? AS TEXT) || CAST(current_schema() AS TEXT)))`, migrateLock).Error
			if err != nil {
				return err
			}
		}
		err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY,
			applied_at BIGINT NOT NULL
		)`).Error
		if err != nil {
			return err
		}
		var applied []int
		if err := tx.Raw(`SELECT version FROM schema_migrations`).Scan(&applied).Error; err != nil {
			return err
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range migrations {
			if done[m.version] {
				continue
			}
			for _, stmt := range m.statements {
				if err := tx.Exec(db.dialectSQL(stmt)).Error; err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
				}
			}
			err := tx.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, db.nowMicros()).Error
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the latest applied migration, 0 before the first.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	if !db.read.WithContext(ctx).Migrator().HasTable("schema_migrations") {
		return 0, nil
	}
	var v *int
	err := db.reader(ctx).Raw(`SELECT MAX(version) FROM schema_migrations`).Scan(&v).Error
	if err != nil {
		return 0, translate(err, "Schema version")
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// dialectSQL replaces the type placeholders of a migration statement.
func (db *DB) dialectSQL(stmt string) string {
	if db.postgres {
		return strings.NewReplacer(
			"{{blob}}", "BYTEA",
			"{{serial}}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
		).Replace(stmt)
	}
	return strings.NewReplacer(
		"{{blob}}", "BLOB",
		"{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
	).Replace(stmt)
}

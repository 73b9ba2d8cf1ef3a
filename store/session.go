package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type setupSessionRow struct {
	TokenHash   []byte
	ProjectID   string
	Fingerprint string
	ExpiresAt   int64
	CreatedAt   int64
}

// CreateSetupSession stores a signed-in session of the setup page and
// removes sessions that have expired. It returns ENOTFOUND when the project
// does not exist.
func (db *DB) CreateSetupSession(ctx context.Context, s billing.SetupSession) error {
	now := db.nowMicros()
	return db.transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM setup_sessions WHERE expires_at < ?`, now).Error; err != nil {
			return translate(err, "Setup session")
		}
		if _, err := projectTenant(tx, s.ProjectID); err != nil {
			return err
		}
		// The hash is not the first value: GORM expands a slice that
		// follows a parenthesis, as for IN (?).
		err := tx.Exec(`INSERT INTO setup_sessions (project_id, token_hash, fingerprint, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?)`, s.ProjectID, s.TokenHash, s.Fingerprint, micros(s.ExpiresAt), now).Error
		return translate(err, "Setup session")
	})
}

// FindSetupSession returns the session whose token hashes to tokenHash,
// or ENOTFOUND when there is none or it has expired.
func (db *DB) FindSetupSession(ctx context.Context, tokenHash []byte) (*billing.SetupSession, error) {
	var row setupSessionRow
	err := scanOne(db.reader(ctx).Raw(`SELECT token_hash, project_id, fingerprint, expires_at, created_at
		FROM setup_sessions WHERE token_hash = ? AND expires_at >= ?`, tokenHash, db.nowMicros()), &row, "Setup session")
	if err != nil {
		return nil, err
	}
	return &billing.SetupSession{TokenHash: row.TokenHash, ProjectID: row.ProjectID, Fingerprint: row.Fingerprint,
		ExpiresAt: fromMicros(row.ExpiresAt), CreatedAt: fromMicros(row.CreatedAt)}, nil
}

// DeleteSetupSession ends a session on every instance; an unknown session
// is not an error.
func (db *DB) DeleteSetupSession(ctx context.Context, tokenHash []byte) error {
	err := db.write.WithContext(ctx).Exec(`DELETE FROM setup_sessions WHERE token_hash = ?`, tokenHash).Error
	return translate(err, "Setup session")
}

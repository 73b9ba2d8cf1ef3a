package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type stripeSettingsRow struct {
	ProjectID        string
	Environment      string
	SecretKeyEnc     string
	PublishableKey   string
	WebhookSecretEnc string
	RefetchObjects   int
	UpdatedAt        int64
}

type authSettingsRow struct {
	ProjectID      string
	JWKSURL        string `gorm:"column:jwks_url"`
	HS256SecretEnc string `gorm:"column:hs256_secret_enc"`
	Issuer         string
	Audience       string
	UpdatedAt      int64
}

// Contexts that sealed values are bound to: the table, the row's key and
// the column. A ciphertext copied to another row or column does not open.
func stripeSecretAAD(projectID string, env billing.Environment, column string) string {
	return "stripe_settings/" + projectID + "/" + string(env) + "/" + column
}

func authSecretAAD(projectID string) string {
	return "auth_settings/" + projectID + "/hs256_secret_enc"
}

// seal encrypts a secret bound to aad; the empty string stays empty.
func (db *DB) seal(plaintext, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	} else if db.sealer == nil {
		return "", fmt.Errorf("store: no keyring to seal secrets with")
	}
	sealed, err := db.sealer.SealFor(plaintext, aad)
	if err != nil {
		return "", fmt.Errorf("store: seal: %w", err)
	}
	return sealed, nil
}

// unseal decrypts a value written by seal with the same aad.
func (db *DB) unseal(sealed, aad string) (string, error) {
	if sealed == "" {
		return "", nil
	} else if db.sealer == nil {
		return "", fmt.Errorf("store: no keyring to open secrets with")
	}
	plaintext, err := db.sealer.OpenFor(sealed, aad)
	if err != nil {
		return "", fmt.Errorf("store: open sealed secret: %w", err)
	}
	return plaintext, nil
}

// PutStripeSettings stores a project's Stripe keys for one environment,
// replacing earlier ones, with SecretKey and WebhookSecret sealed. It
// returns EINVALID for an unknown environment and ENOTFOUND when the
// project does not exist.
func (db *DB) PutStripeSettings(ctx context.Context, s billing.StripeSettings) error {
	if !s.Environment.Valid() {
		return billing.FieldErrorf("environment", "The environment must be test or live.")
	}
	secretKey, err := db.seal(s.SecretKey, stripeSecretAAD(s.ProjectID, s.Environment, "secret_key_enc"))
	if err != nil {
		return err
	}
	webhookSecret, err := db.seal(s.WebhookSecret, stripeSecretAAD(s.ProjectID, s.Environment, "webhook_secret_enc"))
	if err != nil {
		return err
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		tenantID, err := projectTenant(tx, s.ProjectID)
		if err != nil {
			return err
		}
		refetch := 0
		if s.RefetchObjects {
			refetch = 1
		}
		err = tx.Exec(`INSERT INTO stripe_settings
			(project_id, environment, secret_key_enc, publishable_key, webhook_secret_enc, refetch_objects, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, environment) DO UPDATE SET
				secret_key_enc = excluded.secret_key_enc,
				publishable_key = excluded.publishable_key,
				webhook_secret_enc = excluded.webhook_secret_enc,
				refetch_objects = excluded.refetch_objects,
				updated_at = excluded.updated_at`,
			s.ProjectID, string(s.Environment), secretKey, s.PublishableKey, webhookSecret, refetch, db.nowMicros()).Error
		if err != nil {
			return translate(err, "Stripe settings")
		}
		return db.audit(ctx, tx, tenantID, s.ProjectID, "stripe_settings.put", map[string]any{
			"environment":     s.Environment,
			"publishable_key": s.PublishableKey,
			"webhook_secret":  s.WebhookSecret != "",
			"refetch_objects": s.RefetchObjects,
		})
	})
}

// FindStripeSettings returns a project's Stripe keys for one environment,
// opened, or ENOTFOUND when none are stored.
func (db *DB) FindStripeSettings(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error) {
	var row stripeSettingsRow
	err := scanOne(db.reader(ctx).Raw(`SELECT project_id, environment, secret_key_enc, publishable_key,
			webhook_secret_enc, refetch_objects, updated_at
		FROM stripe_settings WHERE project_id = ? AND environment = ?`, projectID, string(env)),
		&row, "Stripe settings")
	if err != nil {
		return nil, err
	}
	s := &billing.StripeSettings{
		ProjectID:      row.ProjectID,
		Environment:    billing.Environment(row.Environment),
		PublishableKey: row.PublishableKey,
		RefetchObjects: row.RefetchObjects != 0,
		UpdatedAt:      fromMicros(row.UpdatedAt),
	}
	if s.SecretKey, err = db.unseal(row.SecretKeyEnc, stripeSecretAAD(projectID, env, "secret_key_enc")); err != nil {
		return nil, err
	}
	if s.WebhookSecret, err = db.unseal(row.WebhookSecretEnc, stripeSecretAAD(projectID, env, "webhook_secret_enc")); err != nil {
		return nil, err
	}
	return s, nil
}

// PutAuthSettings stores how a project's buyer tokens are verified,
// replacing earlier settings, with HS256Secret sealed. It returns ENOTFOUND
// when the project does not exist.
func (db *DB) PutAuthSettings(ctx context.Context, s billing.AuthSettings) error {
	secret, err := db.seal(s.HS256Secret, authSecretAAD(s.ProjectID))
	if err != nil {
		return err
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		tenantID, err := projectTenant(tx, s.ProjectID)
		if err != nil {
			return err
		}
		err = tx.Exec(`INSERT INTO auth_settings
			(project_id, jwks_url, hs256_secret_enc, issuer, audience, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id) DO UPDATE SET
				jwks_url = excluded.jwks_url,
				hs256_secret_enc = excluded.hs256_secret_enc,
				issuer = excluded.issuer,
				audience = excluded.audience,
				updated_at = excluded.updated_at`,
			s.ProjectID, s.JWKSURL, secret, s.Issuer, s.Audience, db.nowMicros()).Error
		if err != nil {
			return translate(err, "Auth settings")
		}
		return db.audit(ctx, tx, tenantID, s.ProjectID, "auth_settings.put", map[string]any{
			"jwks_url":     s.JWKSURL,
			"hs256_secret": s.HS256Secret != "",
			"issuer":       s.Issuer,
			"audience":     s.Audience,
		})
	})
}

// FindAuthSettings returns how a project's buyer tokens are verified, with
// the HS256 secret opened, or ENOTFOUND when nothing is configured.
func (db *DB) FindAuthSettings(ctx context.Context, projectID string) (*billing.AuthSettings, error) {
	var row authSettingsRow
	err := scanOne(db.reader(ctx).Raw(`SELECT project_id, jwks_url, hs256_secret_enc, issuer, audience, updated_at
		FROM auth_settings WHERE project_id = ?`, projectID), &row, "Auth settings")
	if err != nil {
		return nil, err
	}
	s := &billing.AuthSettings{
		ProjectID: row.ProjectID,
		JWKSURL:   row.JWKSURL,
		Issuer:    row.Issuer,
		Audience:  row.Audience,
		UpdatedAt: fromMicros(row.UpdatedAt),
	}
	if s.HS256Secret, err = db.unseal(row.HS256SecretEnc, authSecretAAD(projectID)); err != nil {
		return nil, err
	}
	return s, nil
}

// RotateSecrets re-seals, in one transaction, every stored secret that the
// keyring says was not sealed under its current key, and returns how many
// values changed.
func (db *DB) RotateSecrets(ctx context.Context) (int, error) {
	if db.sealer == nil {
		return 0, fmt.Errorf("store: no keyring to rotate secrets with")
	}
	var changed int
	err := db.transact(ctx, func(tx *gorm.DB) error {
		changed = 0
		var stripeRows []stripeSettingsRow
		err := tx.Raw(`SELECT project_id, environment, secret_key_enc, webhook_secret_enc
			FROM stripe_settings ORDER BY project_id, environment`).Scan(&stripeRows).Error
		if err != nil {
			return err
		}
		for _, r := range stripeRows {
			env := billing.Environment(r.Environment)
			secretKey, n1, err := db.reseal(r.SecretKeyEnc, stripeSecretAAD(r.ProjectID, env, "secret_key_enc"))
			if err != nil {
				return err
			}
			webhookSecret, n2, err := db.reseal(r.WebhookSecretEnc, stripeSecretAAD(r.ProjectID, env, "webhook_secret_enc"))
			if err != nil {
				return err
			}
			if n1+n2 == 0 {
				continue
			}
			err = tx.Exec(`UPDATE stripe_settings SET secret_key_enc = ?, webhook_secret_enc = ?
				WHERE project_id = ? AND environment = ?`,
				secretKey, webhookSecret, r.ProjectID, r.Environment).Error
			if err != nil {
				return err
			}
			changed += n1 + n2
		}

		var authRows []authSettingsRow
		err = tx.Raw(`SELECT project_id, hs256_secret_enc FROM auth_settings ORDER BY project_id`).
			Scan(&authRows).Error
		if err != nil {
			return err
		}
		for _, r := range authRows {
			secret, n, err := db.reseal(r.HS256SecretEnc, authSecretAAD(r.ProjectID))
			if err != nil {
				return err
			} else if n == 0 {
				continue
			}
			err = tx.Exec(`UPDATE auth_settings SET hs256_secret_enc = ? WHERE project_id = ?`,
				secret, r.ProjectID).Error
			if err != nil {
				return err
			}
			changed += n
		}
		return nil
	})
	if err != nil {
		return 0, translate(err, "Settings")
	}
	return changed, nil
}

// reseal returns sealed re-sealed under the current key and bound to aad,
// and 1; or sealed and 0 when it needs no rotation.
func (db *DB) reseal(sealed, aad string) (string, int, error) {
	if sealed == "" || !db.sealer.NeedsRotation(sealed) {
		return sealed, 0, nil
	}
	plaintext, err := db.unseal(sealed, aad)
	if err != nil {
		return "", 0, err
	}
	fresh, err := db.seal(plaintext, aad)
	if err != nil {
		return "", 0, err
	}
	return fresh, 1, nil
}

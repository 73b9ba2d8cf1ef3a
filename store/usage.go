package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// AddUsage adds counts to the stored ones, in one transaction; counts are
// keyed by project, environment, endpoint, status class and day.
func (db *DB) AddUsage(ctx context.Context, counts []billing.UsageCount) error {
	if len(counts) == 0 {
		return nil
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		for _, c := range counts {
			if c.Count == 0 {
				continue
			}
			err := tx.Exec(`INSERT INTO usage_counts (project_id, environment, endpoint, status_class, day, count)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (project_id, environment, endpoint, status_class, day) DO UPDATE SET
					count = usage_counts.count + excluded.count`,
				c.ProjectID, string(c.Environment), c.Endpoint, c.StatusClass, c.Day, c.Count).Error
			if err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "Usage")
}

// ListUsage returns the counts of a project ("" for all projects) and
// environment ("" for both) from fromDay to toDay inclusive (days as
// "2006-01-02"; "" leaves that end open), ordered by day, project,
// environment, endpoint and status class.
func (db *DB) ListUsage(ctx context.Context, projectID string, env billing.Environment, fromDay, toDay string) ([]billing.UsageCount, error) {
	q := db.reader(ctx).Table("usage_counts").
		Select("project_id, environment, endpoint, status_class, day, count")
	if projectID != "" {
		q = q.Where("project_id = ?", projectID)
	}
	if env != "" {
		q = q.Where("environment = ?", string(env))
	}
	if fromDay != "" {
		q = q.Where("day >= ?", fromDay)
	}
	if toDay != "" {
		q = q.Where("day <= ?", toDay)
	}
	var out []billing.UsageCount
	err := q.Order("day, project_id, environment, endpoint, status_class").Scan(&out).Error
	if err != nil {
		return nil, translate(err, "Usage")
	}
	return out, nil
}

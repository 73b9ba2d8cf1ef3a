package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stackfordevs/billing"
)

// gormLogger passes GORM's messages to slog as plain sentences and logs
// failed and slow statements without their values: statements carry
// emails, API keys and Stripe's free text, and none of that may reach a
// log. A statement that failed because its caller went away is logged at
// debug level only.
type gormLogger struct {
	log  *slog.Logger
	slow time.Duration
}

// newGormLogger returns the GORM logger of l, or a silent one when l is nil.
func newGormLogger(l *slog.Logger) logger.Interface {
	if l == nil {
		return logger.Discard
	}
	return gormLogger{log: l.With("component", "database"), slow: slowQuery}
}

// LogMode implements logger.Interface; the level is slog's.
func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }

// Info implements logger.Interface.
func (l gormLogger) Info(ctx context.Context, msg string, data ...any) {
	l.log.InfoContext(ctx, sentence(msg, data))
}

// Warn implements logger.Interface.
func (l gormLogger) Warn(ctx context.Context, msg string, data ...any) {
	l.log.WarnContext(ctx, sentence(msg, data))
}

// Error implements logger.Interface.
func (l gormLogger) Error(ctx context.Context, msg string, data ...any) {
	l.log.ErrorContext(ctx, sentence(msg, data))
}

// Trace implements logger.Interface.
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	level := slog.LevelWarn
	msg := "slow statement"
	switch {
	case err != nil && errors.Is(err, gorm.ErrRecordNotFound):
		return
	case err != nil && errors.Is(err, context.Canceled):
		level, msg = slog.LevelDebug, "statement canceled"
	case err != nil && billing.ErrorCode(err) == billing.EUNAVAILABLE:
		level, msg = slog.LevelWarn, "statement failed: database unavailable"
	case err != nil:
		level, msg = slog.LevelError, "statement failed"
	case elapsed < l.slow:
		return
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	stmt, rows := fc()
	attrs := []slog.Attr{
		slog.String("sql", withoutValues(stmt)),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	}
	if rows >= 0 {
		attrs = append(attrs, slog.Int64("rows", rows))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// ParamsFilter implements gorm.ParamsFilter: statements are explained
// without their parameters.
func (gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// sentence formats one of GORM's printf-style messages ("failed to
// initialize database, got error %v") into a plain sentence.
func sentence(msg string, data []any) string {
	if strings.Contains(msg, "%") {
		return fmt.Sprintf(msg, data...)
	}
	if len(data) == 0 {
		return msg
	}
	return msg + " " + fmt.Sprint(data...)
}

// withoutValues returns a SQL statement with every literal replaced by ?:
// quoted strings (with ” escapes) and numbers that stand alone. GORM's
// Scan explains a statement with its values filled in, whatever the
// logger asks; this takes them out again.
func withoutValues(stmt string) string {
	var b strings.Builder
	b.Grow(len(stmt))
	for i := 0; i < len(stmt); i++ {
		ch := stmt[i]
		switch {
		case ch == '\'' || ch == '"':
			j := i + 1
			for j < len(stmt) {
				if stmt[j] == ch {
					if j+1 < len(stmt) && stmt[j+1] == ch {
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteByte('?')
			i = j
		case ch >= '0' && ch <= '9' && (i == 0 || !wordByte(stmt[i-1])):
			j := i
			for j < len(stmt) && (stmt[j] >= '0' && stmt[j] <= '9' || stmt[j] == '.') {
				j++
			}
			b.WriteByte('?')
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// wordByte reports whether c can be part of an identifier or a
// placeholder ($1), so that a digit after it is not a literal.
func wordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

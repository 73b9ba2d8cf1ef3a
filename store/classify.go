package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// unavailableRetryAfter is how long a caller is asked to wait when the
// database cannot be reached.
const unavailableRetryAfter = 5 * time.Second

// classified is a database error turned into the service's error. It is a
// *billing.Error to errors.As and unwraps to the driver's error, so that
// the transaction retry and GORM's error matching still see it.
type classified struct {
	be    *billing.Error
	cause error
}

func (e *classified) Error() string { return e.be.Error() + ": " + e.cause.Error() }
func (e *classified) Unwrap() error { return e.cause }

// As makes a classified error a *billing.Error to errors.As.
func (e *classified) As(target any) bool {
	if t, ok := target.(**billing.Error); ok {
		*t = e.be
		return true
	}
	return false
}

// classify turns the database errors whose meaning does not depend on the
// statement into the service's errors:
//
//   - EUNAVAILABLE (with a Retry-After) when the database cannot be
//     reached or cannot serve now: connection refused, reset or lost, the
//     pool closed, a timeout, too many connections, the server shutting
//     down, a serialization failure or deadlock that outlived the retries,
//     SQLite's lock held past the busy timeout. These are transient: the
//     same request may succeed later.
//   - EINVALID when the database refuses a value (PostgreSQL's data
//     exceptions, class 22, such as 22021 for a NUL byte or invalid UTF-8
//     in text). These are permanent: retrying the same value fails again.
//
// A canceled context (the caller went away) and every other error are
// returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var be *billing.Error
	if errors.As(err, &be) || errors.Is(err, context.Canceled) || errors.Is(err, gorm.ErrRecordNotFound) {
		return err
	}
	switch {
	case dataError(err):
		return &classified{be: &billing.Error{Code: billing.EINVALID,
			Message: "The database refused a value: text must be valid UTF-8 without NUL bytes, and numbers within range."}, cause: err}
	case unavailable(err):
		return &classified{be: &billing.Error{Code: billing.EUNAVAILABLE,
			Message: "The database is unavailable; try again shortly.", RetryAfter: unavailableRetryAfter}, cause: err}
	}
	return err
}

// dataError reports whether err is PostgreSQL refusing a value.
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// unavailable reports whether err says the database cannot serve now.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources, too many connections
			strings.HasPrefix(pgErr.Code, "57P"),         // shutdown, cannot connect now
			pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
			pgErr.Code == "57014", pgErr.Code == "55P03": // statement timeout, lock not available
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") ||
		strings.Contains(msg, "conn closed") ||
		strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}

// registerClassifier makes every statement GORM runs classify its error,
// so that no store method can let an unreachable database or a refused
// value through as an internal error.
func registerClassifier(g *gorm.DB) error {
	fn := func(tx *gorm.DB) {
		if tx.Error != nil {
			tx.Error = classify(tx.Error)
		}
	}
	cb := g.Callback()
	for name, err := range map[string]error{
		"query":  cb.Query().Register("billing:classify", fn),
		"row":    cb.Row().Register("billing:classify", fn),
		"raw":    cb.Raw().Register("billing:classify", fn),
		"create": cb.Create().Register("billing:classify", fn),
		"update": cb.Update().Register("billing:classify", fn),
		"delete": cb.Delete().Register("billing:classify", fn),
	} {
		if err != nil {
			return errors.New("store: register error classifier on " + name + ": " + err.Error())
		}
	}
	return nil
}

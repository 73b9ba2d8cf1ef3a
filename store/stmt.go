package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// stmtCache holds the prepared statements of the mirror's write path, the
// statements every webhook event runs. Run through database/sql statements
// prepared once rather than through GORM, an event takes half the time on
// SQLite (BenchmarkApplyEvent). A statement is first run through GORM inside
// its transaction, and prepared after the transaction ends: the SQLite
// writer has one connection, which the transaction holds. The statements
// are the code's own, a fixed set; the cache still stops growing at
// maxStmts.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

// maxStmts bounds the prepared statements kept.
const maxStmts = 256

// cached returns query prepared, or nil when it is not yet, and then notes
// it for prepareWanted.
func (db *DB) cached(query string) *sql.Stmt {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	if st, ok := db.stmts.m[query]; ok {
		return st
	}
	if len(db.stmts.m)+len(db.stmts.wanted) < maxStmts {
		if db.stmts.wanted == nil {
			db.stmts.wanted = make(map[string]bool)
		}
		db.stmts.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the statements that ran unprepared. Call it
// outside any transaction; a failure leaves them unprepared.
func (db *DB) prepareWanted(ctx context.Context) {
	db.stmts.mu.Lock()
	wanted := db.stmts.wanted
	db.stmts.wanted = nil
	db.stmts.mu.Unlock()
	if len(wanted) == 0 {
		return
	}
	sqlDB, err := db.write.DB()
	if err != nil {
		return
	}
	for query := range wanted {
		st, err := sqlDB.PrepareContext(ctx, db.placeholders(query))
		if err != nil {
			continue
		}
		db.stmts.mu.Lock()
		if _, ok := db.stmts.m[query]; ok || len(db.stmts.m) >= maxStmts {
			st.Close()
		} else {
			if db.stmts.m == nil {
				db.stmts.m = make(map[string]*sql.Stmt)
			}
			db.stmts.m[query] = st
		}
		db.stmts.mu.Unlock()
	}
}

// placeholders turns the "?" placeholders of query into PostgreSQL's $n.
// The write path's statements have no "?" in literals.
func (db *DB) placeholders(query string) string {
	if !db.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// inTx returns the prepared statement of query bound to the transaction
// tx, or nil when query is not prepared yet (or tx does not run on
// database/sql directly): the caller then runs it through GORM.
func (db *DB) inTx(tx *gorm.DB, query string) *sql.Stmt {
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return nil
	}
	st := db.cached(query)
	if st == nil {
		return nil
	}
	return sqlTx.StmtContext(tx.Statement.Context, st)
}

// txExec runs query in tx and returns the number of rows it changed.
func (db *DB) txExec(tx *gorm.DB, query string, args ...any) (int64, error) {
	st := db.inTx(tx, query)
	if st == nil {
		n, err := rowsAffected(tx.Exec(query, args...))
		return n, db.translateDriver(err)
	}
	defer st.Close()
	res, err := st.ExecContext(tx.Statement.Context, args...)
	if err != nil {
		return 0, db.translateDriver(err)
	}
	return res.RowsAffected()
}

// txQuery runs query in tx and scans every row it returns into an R, by
// column name as GORM does.
func txQuery[R any](db *DB, tx *gorm.DB, query string, args ...any) ([]R, error) {
	var out []R
	st := db.inTx(tx, query)
	if st == nil {
		err := tx.Raw(query, args...).Scan(&out).Error
		return out, db.translateDriver(err)
	}
	defer st.Close()
	rows, err := st.QueryContext(tx.Statement.Context, args...)
	if err != nil {
		return nil, db.translateDriver(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r R
		if err := tx.ScanRows(rows, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, db.translateDriver(err)
	}
	return out, nil
}

// translateDriver turns a driver error into GORM's (gorm.ErrDuplicatedKey,
// gorm.ErrForeignKeyViolated, ...), as GORM does for its own statements, so
// that translate knows it.
func (db *DB) translateDriver(err error) error {
	if err == nil {
		return nil
	}
	if t, ok := db.write.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}

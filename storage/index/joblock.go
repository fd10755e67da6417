package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// JobLock is a cluster-wide lock of a background job (a PostgreSQL
// session advisory lock), held on a connection of its own until Release:
// while one node holds it, no other node runs the job. It ends with its
// connection: a node that dies lets another take the job at once.
type JobLock struct {
	conn *pgxpool.Conn
	key  string
}

// TryJobLock takes the lock of job name if no node holds it; nil (and no
// error) when another node does.
func (db *DB) TryJobLock(ctx context.Context, name string) (*JobLock, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, mapErr("job lock "+name, err)
	}
	key := "bwc job " + name
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, mapErr("job lock "+name, err)
	}
	if !ok {
		conn.Release()
		return nil, nil
	}
	return &JobLock{conn: conn, key: key}, nil
}

// ErrLockLost: the lock's connection failed; the job must stop, as another
// node may have taken it.
var ErrLockLost = errors.New("job lock lost")

// Held checks that the lock's connection (and so the lock: it is only
// given up by Release) is still there.
func (l *JobLock) Held(ctx context.Context) error {
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrLockLost, l.key, err)
	}
	return nil
}

// Release gives the lock up and returns its connection (a broken one is
// closed, which releases the lock as well).
func (l *JobLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, l.key); err != nil {
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
	l.conn = nil
}

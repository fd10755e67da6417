package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobLock is a cluster-wide lock of a background job (a PostgreSQL
// session advisory lock), held until Release on a connection of its own,
// outside the pool (which would otherwise lose a connection for good):
// while one node holds it, no other node runs the job. It ends with its
// session: a node that dies lets another take the job over as soon as
// PostgreSQL sees the connection closed.
type JobLock struct {
	conn *pgx.Conn
	key  string
}

// TryJobLock takes the lock of job name if no node holds it; nil (and no
// error) when another node does.
func (db *DB) TryJobLock(ctx context.Context, name string) (*JobLock, error) {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, mapErr("job lock "+name, err)
	}
	key := "bwc job " + name
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		_ = conn.Close(context.Background())
		return nil, mapErr("job lock "+name, err)
	}
	if !ok {
		_ = conn.Close(context.Background())
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

// Release gives the lock up and closes its connection.
func (l *JobLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// closing the session releases its advisory locks; unlocking first
	// says so to a server that would see the close late
	_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, l.key)
	_ = l.conn.Close(ctx)
	l.conn = nil
}

package index

import "context"

// RegisterPlatformKey registers the platform's Ed25519 public key when
// none is (the first node), and returns the key registered: the caller
// compares it with its own. A node never replaces the registered key (the
// application's login may not update or delete the row).
func (db *DB) RegisterPlatformKey(ctx context.Context, pub []byte, node string) ([]byte, error) {
	if _, err := db.pool.Exec(ctx, `INSERT INTO platform_keys (public_key, registered_by) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		pub, node); err != nil {
		return nil, mapErr("register platform key", err)
	}
	return db.PlatformKey(ctx)
}

// PlatformKey is the registered public key; ErrNotFound before the first
// node registered one.
func (db *DB) PlatformKey(ctx context.Context) ([]byte, error) {
	var pub []byte
	err := db.pool.QueryRow(ctx, `SELECT public_key FROM platform_keys`).Scan(&pub)
	return pub, mapErr("platform key", err)
}

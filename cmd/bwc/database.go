package main

import (
	"context"

	"github.com/bwcplatform/bwc/storage/index"
)

// openDatabase opens the platform's database as `bwc serve` works with
// it: when -migrate-database-url (the schema owner) is given, that login
// migrates first; then the pool of -database-url (the application's
// login, bwc_app, no superuser) is opened and the schema version checked
// against this binary's migrations, failing with "run bwc migrate as the
// schema owner" when it is behind.
func openDatabase(ctx context.Context, cfg Config) (*index.DB, int32, error) {
	if cfg.MigrateURL != "" {
		if _, err := migrateDatabase(ctx, cfg.MigrateURL); err != nil {
			return nil, 0, err
		}
	}
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, 0, err
	}
	v, err := db.CheckSchema(ctx)
	if err != nil {
		db.Close()
		return nil, 0, err
	}
	return db, v, nil
}

// migrateDatabase applies the embedded migrations as the login of url
// (the schema owner) and returns the schema version.
func migrateDatabase(ctx context.Context, url string) (int32, error) {
	db, err := index.Open(ctx, url)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return db.Migrate(ctx)
}

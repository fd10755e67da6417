package index_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestMigrateEmptyDatabaseIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db, err := index.Open(ctx, storagetest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v1, err := db.Migrate(ctx)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if v1 < 1 {
		t.Fatalf("schema version after migrate = %d, want >= 1", v1)
	}
	v2, err := db.Migrate(ctx)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if v2 != v1 {
		t.Fatalf("second migrate moved the version from %d to %d", v1, v2)
	}
	for _, table := range []string{"officers", "devices", "checkouts", "incidents", "assignments", "users"} {
		var n int
		if err := db.Pool().QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("table %s after migrate: %v", table, err)
		}
	}
}

func TestOpenUnreachableFailsFast(t *testing.T) {
	start := time.Now()
	_, err := index.Open(context.Background(), "postgres://postgres:secretpw@127.0.0.1:1/bwc?sslmode=disable")
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if got := err.Error(); !contains(got, "127.0.0.1:1") || contains(got, "secretpw") {
		t.Fatalf("error %q should name the server and hide the password", got)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("Open took %v to fail", time.Since(start))
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

type fixture struct {
	db       *index.DB
	officers []index.Officer
	devices  []index.Device
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{db: storagetest.NewDB(t)}
	for i, badge := range []string{"1001", "1002"} {
		o, err := f.db.CreateOfficer(ctx, index.Officer{Badge: badge, Name: "Officer " + badge, Unit: "Patrol"})
		if err != nil {
			t.Fatal(err)
		}
		f.officers = append(f.officers, o)
		d, err := f.db.CreateDevice(ctx, index.Device{Serial: []string{"CAM-A", "CAM-B"}[i], Secret: "s3cret-pass"})
		if err != nil {
			t.Fatal(err)
		}
		f.devices = append(f.devices, d)
	}
	return f
}

func TestCheckOutOneOpenPerDeviceAndOfficer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	devA, devB := f.devices[0].ID, f.devices[1].ID
	offA, offB := f.officers[0].ID, f.officers[1].ID

	if _, err := f.db.CheckOut(ctx, devA, offA, time.Time{}); err != nil {
		t.Fatalf("first check-out: %v", err)
	}
	if _, err := f.db.CheckOut(ctx, devA, offB, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("second check-out of the same device: err = %v, want ErrConflict", err)
	}
	if _, err := f.db.CheckOut(ctx, devB, offA, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("second device for the same officer: err = %v, want ErrConflict", err)
	}
	if _, err := f.db.CheckIn(ctx, devA, time.Time{}); err != nil {
		t.Fatalf("check-in: %v", err)
	}
	if _, err := f.db.CheckIn(ctx, devA, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("check-in of a device not checked out: err = %v, want ErrConflict", err)
	}
	if _, err := f.db.CheckOut(ctx, devA, offB, time.Time{}); err != nil {
		t.Fatalf("check-out after check-in: %v", err)
	}
	open, err := f.db.Checkouts(ctx, true)
	if err != nil || len(open) != 1 || open[0].OfficerID != offB {
		t.Fatalf("open check-outs = %+v, %v; want one, by officer B", open, err)
	}
}

// The database itself, not only Go code, refuses a second open check-out.
func TestDatabaseRefusesSecondOpenCheckOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ins := `INSERT INTO checkouts (id, device_id, officer_id, checked_out_at) VALUES ($1, $2, $3, $4)`
	if _, err := f.db.Pool().Exec(ctx, ins, uuid.New(), f.devices[0].ID, f.officers[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := f.db.Pool().Exec(ctx, ins, uuid.New(), f.devices[0].ID, f.officers[1].ID, time.Now().Add(time.Hour))
	if err == nil {
		t.Fatal("raw INSERT of a second open check-out of one device succeeded")
	}
	// a back-dated, closed check-out that overlaps the open one is refused too
	_, err = f.db.Pool().Exec(ctx, `INSERT INTO checkouts (id, device_id, officer_id, checked_out_at, checked_in_at)
		VALUES ($1, $2, $3, $4, $5)`, uuid.New(), f.devices[0].ID, f.officers[1].ID, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	if err == nil {
		t.Fatal("raw INSERT of an overlapping closed check-out succeeded")
	}
}

func TestWearerAt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	if _, err := f.db.CheckOut(ctx, f.devices[0].ID, f.officers[0].ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.CheckIn(ctx, f.devices[0].ID, t0.Add(8*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.CheckOut(ctx, f.devices[0].ID, f.officers[1].ID, t0.Add(9*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want uuid.UUID
	}{
		{t0.Add(-time.Minute), uuid.Nil},
		{t0, f.officers[0].ID},
		{t0.Add(4 * time.Hour), f.officers[0].ID},
		{t0.Add(8 * time.Hour), uuid.Nil}, // checked in: half-open range
		{t0.Add(10 * time.Hour), f.officers[1].ID},
		{t0.Add(1000 * time.Hour), f.officers[1].ID},
	} {
		c, err := f.db.WearerAt(ctx, f.devices[0].ID, tc.at)
		if tc.want == uuid.Nil {
			if !errors.Is(err, index.ErrNotFound) {
				t.Errorf("WearerAt(%v) = %v, %v; want ErrNotFound", tc.at, c.OfficerID, err)
			}
			continue
		}
		if err != nil || c.OfficerID != tc.want {
			t.Errorf("WearerAt(%v) = %v, %v; want %v", tc.at, c.OfficerID, err, tc.want)
		}
	}
}

func TestValidationAndNotFound(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	lat := 91.0
	cases := []struct {
		name  string
		err   error
		field string
		want  error
	}{
		{"officer without badge", second(f.db.CreateOfficer(ctx, index.Officer{Name: "x"})), "badge", index.ErrInvalid},
		{"officer without name", second(f.db.CreateOfficer(ctx, index.Officer{Badge: "9"})), "name", index.ErrInvalid},
		{"duplicate badge", second(f.db.CreateOfficer(ctx, index.Officer{Badge: "1001", Name: "x"})), "", index.ErrConflict},
		{"bad serial", second(f.db.CreateDevice(ctx, index.Device{Serial: "a/b", Secret: "12345678"})), "serial", index.ErrInvalid},
		{"short secret", second(f.db.CreateDevice(ctx, index.Device{Serial: "CAM-Z", Secret: "123"})), "secret", index.ErrInvalid},
		{"duplicate serial", second(f.db.CreateDevice(ctx, index.Device{Serial: "CAM-A", Secret: "12345678"})), "", index.ErrConflict},
		{"incident without number", second(f.db.CreateIncident(ctx, index.Incident{})), "number", index.ErrInvalid},
		{"incident lat without lon", second(f.db.CreateIncident(ctx, index.Incident{Number: "1", Lat: &lat})), "lat", index.ErrInvalid},
		{"unknown officer", second(f.db.Officer(ctx, uuid.New())), "", index.ErrNotFound},
		{"unknown device serial", second(f.db.DeviceBySerial(ctx, "NOPE")), "", index.ErrNotFound},
		{"check-out to unknown officer", second(f.db.CheckOut(ctx, f.devices[1].ID, uuid.New(), time.Time{})), "", index.ErrNotFound},
		{"check-out of unknown device", second(f.db.CheckOut(ctx, uuid.New(), f.officers[1].ID, time.Time{})), "", index.ErrNotFound},
		{"assign to unknown incident", second(f.db.Assign(ctx, uuid.New(), f.officers[0].ID, time.Time{})), "", index.ErrNotFound},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
			continue
		}
		var fe *index.FieldError
		if tc.field != "" && (!errors.As(tc.err, &fe) || fe.Field != tc.field) {
			t.Errorf("%s: err = %v, want a FieldError naming %q", tc.name, tc.err, tc.field)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestDisabledDeviceCannotBeCheckedOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.db.SetDeviceStatus(ctx, f.devices[0].ID, index.DeviceDisabled); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.CheckOut(ctx, f.devices[0].ID, f.officers[0].ID, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("check-out of a disabled device: err = %v, want ErrConflict", err)
	}
}

func TestAssignments(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	inc, err := f.db.CreateIncident(ctx, index.Incident{Number: "110-2026-0001", Type: "theft"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.db.Assign(ctx, inc.ID, f.officers[0].ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Assign(ctx, inc.ID, f.officers[0].ID, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("overlapping assignment: err = %v, want ErrConflict", err)
	}
	cleared, err := f.db.ClearAssignment(ctx, inc.ID, a.ID, time.Time{})
	if err != nil || cleared.ClearedAt == nil {
		t.Fatalf("clear = %+v, %v", cleared, err)
	}
	if _, err := f.db.ClearAssignment(ctx, inc.ID, a.ID, time.Time{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("second clear: err = %v, want ErrConflict", err)
	}
	if _, err := f.db.ClearAssignment(ctx, inc.ID, uuid.New(), time.Time{}); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("clear of unknown assignment: err = %v, want ErrNotFound", err)
	}
	as, err := f.db.Assignments(ctx, inc.ID)
	if err != nil || len(as) != 1 {
		t.Fatalf("assignments = %+v, %v", as, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:1/db": "postgres://u:xxxxx@h:1/db",
		"postgres://u@h:1/db":    "postgres://u@h:1/db",
		"postgres://h/db?x=y":    "postgres://h/db?x=y",
	} {
		if got := index.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAppLoginChecksButCannotMigrate: on a database its owner has not
// migrated yet, the application's login is told to run bwc migrate as the
// owner, and cannot migrate itself; once the owner has, the check passes.
func TestAppLoginChecksButCannotMigrate(t *testing.T) {
	ctx := context.Background()
	owner := storagetest.DatabaseURL(t)
	app, err := index.Open(ctx, storagetest.AppURL(t, owner))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.CheckSchema(ctx); !errors.Is(err, index.ErrSchemaBehind) || !contains(err.Error(), "run `bwc migrate` as the schema owner") {
		t.Fatalf("CheckSchema before migrating: err = %v, want ErrSchemaBehind saying to run bwc migrate as the owner", err)
	}
	if _, err := app.Migrate(ctx); err == nil || !contains(err.Error(), "permission denied") {
		t.Fatalf("Migrate as the application's login: err = %v, want permission denied", err)
	}
	db, err := index.Open(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.Migrate(ctx)
	if err != nil || v != index.LatestSchema() {
		t.Fatalf("Migrate as the owner = %d, %v; want %d", v, err, index.LatestSchema())
	}
	if got, err := app.CheckSchema(ctx); err != nil || got != v {
		t.Fatalf("CheckSchema after migrating = %d, %v; want %d", got, err, v)
	}
	if _, err := storagetest.Superuser(t, db).Exec(ctx, `UPDATE schema_version SET version = version - 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := app.CheckSchema(ctx); !errors.Is(err, index.ErrSchemaBehind) {
		t.Fatalf("CheckSchema one version behind: err = %v, want ErrSchemaBehind", err)
	}
}

package index_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func fp(f float64) *float64 { return &f }

func TestValidatePosition(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	good := index.Position{Device: "CAM-1", At: now.Add(-time.Second), Lat: 31.23, Lon: 121.47, Speed: fp(12), Direction: fp(359.9), Source: index.PositionAPI}
	for _, c := range []struct {
		field string // "" : valid
		edit  func(p *index.Position)
	}{
		{"", func(p *index.Position) {}},
		{"", func(p *index.Position) { p.Speed, p.Direction = nil, nil }},
		{"", func(p *index.Position) { p.Lat, p.Lon = -90, 180 }},
		{"", func(p *index.Position) { p.At = now.Add(time.Minute) }}, // a clock a little ahead
		{"device", func(p *index.Position) { p.Device = "../x" }},
		{"at", func(p *index.Position) { p.At = time.Time{} }},
		{"at", func(p *index.Position) { p.At = now.Add(time.Hour) }},
		{"at", func(p *index.Position) { p.At = now.Add(-8 * 24 * time.Hour) }},
		{"lat", func(p *index.Position) { p.Lat = 90.0001 }},
		{"lat", func(p *index.Position) { p.Lat = math.NaN() }},
		{"lon", func(p *index.Position) { p.Lon = -180.5 }},
		{"lon", func(p *index.Position) { p.Lon = math.Inf(1) }},
		{"lat", func(p *index.Position) { p.Lat, p.Lon = 0, 0 }},
		{"speed", func(p *index.Position) { p.Speed = fp(-1) }},
		{"speed", func(p *index.Position) { p.Speed = fp(1001) }},
		{"direction", func(p *index.Position) { p.Direction = fp(360) }},
		{"source", func(p *index.Position) { p.Source = "gps" }},
	} {
		p := good
		c.edit(&p)
		err := index.ValidatePosition(p, now)
		var fe *index.FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v, want valid", p, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, index.ErrInvalid)):
			t.Errorf("%+v: %v, want invalid %s", p, err, c.field)
		}
	}
}

func TestPositionsStoreTrackAndLatest(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	for _, s := range []string{"POS-1", "POS-2", "POS-3"} {
		if _, err := db.CreateDevice(ctx, index.Device{Serial: s, Secret: "position-secret"}); err != nil {
			t.Fatal(err)
		}
	}
	ch, stop := db.WatchPositions()
	defer stop()
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	fix := func(dev string, i int) index.Position {
		return index.Position{Device: dev, At: t0.Add(time.Duration(i) * time.Second), Lat: 31 + float64(i)/1000, Lon: 121, Source: index.PositionAPI}
	}
	if err := db.AddPositions(ctx, []index.Position{fix("POS-1", 0), fix("POS-1", 2), fix("POS-2", 1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("storing positions woke no watcher")
	}
	if err := db.AddPosition(ctx, index.Position{Device: "POS-1", At: t0.Add(time.Second), Lat: 31.5, Lon: 121.5, Speed: fp(30), Direction: fp(90), Source: index.PositionGB28181}); err != nil {
		t.Fatal(err)
	}

	// all or nothing: one bad fix, or one unknown device, stores none
	before, _ := db.Positions(ctx, "POS-3", t0.Add(-time.Hour), t0.Add(time.Hour), 0)
	bad := fix("POS-3", 5)
	bad.Lat = 91
	err := db.AddPositions(ctx, []index.Position{fix("POS-3", 3), bad})
	if !errors.Is(err, index.ErrInvalid) || !strings.Contains(err.Error(), "positions[1].lat") {
		t.Errorf("a batch with a bad fix: %v, want invalid positions[1].lat", err)
	}
	if err := db.AddPositions(ctx, []index.Position{fix("POS-3", 3), fix("NO-SUCH-CAM", 4)}); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("a batch with an unknown device: %v, want not found", err)
	}
	if after, _ := db.Positions(ctx, "POS-3", t0.Add(-time.Hour), t0.Add(time.Hour), 0); len(after) != len(before) {
		t.Errorf("refused batches stored %d fixes", len(after)-len(before))
	}
	many := make([]index.Position, index.MaxPositionBatch+1)
	for i := range many {
		many[i] = fix("POS-3", 0)
	}
	if err := db.AddPositions(ctx, many); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("a batch over the bound: %v, want invalid", err)
	}

	track, err := db.Positions(ctx, "POS-1", t0, t0.Add(2*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(track) != 3 || !track[0].At.Equal(t0) || !track[1].At.Equal(t0.Add(time.Second)) || !track[2].At.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("track = %+v, want 3 fixes oldest first", track)
	}
	if p := track[1]; p.Source != index.PositionGB28181 || p.Speed == nil || *p.Speed != 30 || p.Direction == nil || *p.Direction != 90 || p.Lat != 31.5 {
		t.Errorf("stored fix = %+v", p)
	}
	if track[0].Speed != nil {
		t.Errorf("a fix without speed came back with %v", *track[0].Speed)
	}
	if n, _ := db.Positions(ctx, "POS-1", t0.Add(500*time.Millisecond), t0.Add(time.Hour), 1); len(n) != 1 || !n[0].At.Equal(t0.Add(time.Second)) {
		t.Errorf("limited track from t0+0.5s = %+v", n)
	}

	latest, err := db.LatestPositions(ctx, []string{"POS-1", "POS-2", "POS-3", "NONE"})
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || !latest["POS-1"].At.Equal(t0.Add(2*time.Second)) || latest["POS-2"].Lat != 31.001 {
		t.Errorf("latest = %+v", latest)
	}

	// the server appends; it never rewrites a track
	for _, sql := range []string{`UPDATE positions SET latitude = 1`, `DELETE FROM positions`, `TRUNCATE positions`} {
		if _, err := db.Pool().Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s as the application: %v, want permission denied", sql, err)
		}
	}
}

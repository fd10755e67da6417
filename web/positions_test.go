package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

// postFix posts a position body as a camera (HTTP Basic user:pass; no
// credentials when user is ""); the status and the error's field.
func postFix(t *testing.T, base, serial, user, pass, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/devices/"+serial+"/positions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct{ Error, Field string }
	_ = json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e.Field, e.Error
}

// Cameras post their fixes with their own secret; bad input is refused
// whole with a clear error; the track is scoped like the camera's live
// view; the live list and its events carry the latest fix.
func TestDevicePositions(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	opts := testOptions(db)
	live := &scopedLive{fakeLive: fakeLive{ch: make(chan struct{})}}
	opts.Ingest = live
	s := newServer(t, opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	now := time.Now().UTC()
	mine, err := db.CreateOfficer(ctx, index.Officer{Badge: "P1", Name: "Officer mine"}) // no unit: the test supervisor's
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.CreateOfficer(ctx, index.Officer{Badge: "P2", Name: "Officer other", Unit: "U2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		serial, status string
		wearer         *index.Officer
	}{{"GPS-1", index.DeviceActive, &mine}, {"GPS-2", index.DeviceActive, &other}, {"GPS-3", index.DeviceDisabled, nil}} {
		dev, err := db.CreateDevice(ctx, index.Device{Serial: d.serial, Secret: "secret-" + d.serial, Status: d.status})
		if err != nil {
			t.Fatal(err)
		}
		if d.wearer != nil {
			if _, err := db.CheckOut(ctx, dev.ID, d.wearer.ID, now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec, err := db.CreateRecording(ctx, index.Recording{OfficerID: &mine.ID, StartedAt: now.Add(-time.Minute), Source: index.SourceRTSP}, "fixture")
	if err != nil {
		t.Fatal(err)
	}
	live.recs = []ingest.Live{{RecordingID: rec.ID, Device: "GPS-1", Indexed: true, Status: index.RecordingLive}}

	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	fix := func(d time.Duration, lat, lon float64) string {
		return fmt.Sprintf(`{"at":%q,"lat":%v,"lon":%v}`, at(d), lat, lon)
	}
	stored := func(serial string) int {
		ps, err := db.Positions(ctx, serial, now.Add(-time.Hour), now.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}
	var batch101 []string
	for i := range 101 {
		batch101 = append(batch101, fix(-time.Duration(i)*time.Second, 31.2, 121.4))
	}
	for _, c := range []struct {
		name, serial, user, pass, body string
		code                           int
		field                          string // the error's field, for 400s that name one
	}{
		{"no credentials", "GPS-1", "", "", fix(0, 31.2, 121.4), 401, ""},
		{"wrong secret", "GPS-1", "GPS-1", "secret-GPS-2", fix(0, 31.2, 121.4), 401, ""},
		{"another device's credentials", "GPS-1", "GPS-2", "secret-GPS-2", fix(0, 31.2, 121.4), 401, ""},
		{"unknown device", "GPS-9", "GPS-9", "secret-GPS-9", fix(0, 31.2, 121.4), 401, ""},
		{"bad serial", "x..y%2F", "x..y/", "secret", fix(0, 31.2, 121.4), 400, "serial"},
		{"disabled device", "GPS-3", "GPS-3", "secret-GPS-3", fix(0, 31.2, 121.4), 403, ""},
		{"not JSON", "GPS-1", "GPS-1", "secret-GPS-1", `lat=31`, 400, ""},
		{"unknown field", "GPS-1", "GPS-1", "secret-GPS-1", `{"at":"` + at(0) + `","lat":31,"lon":121,"alt":5}`, 400, ""},
		{"trailing data", "GPS-1", "GPS-1", "secret-GPS-1", fix(0, 31.2, 121.4) + `{}`, 400, ""},
		{"no longitude", "GPS-1", "GPS-1", "secret-GPS-1", `{"at":"` + at(0) + `","lat":31}`, 400, "lat/lon"},
		{"no time", "GPS-1", "GPS-1", "secret-GPS-1", `{"lat":31,"lon":121}`, 400, "at"},
		{"latitude out of range", "GPS-1", "GPS-1", "secret-GPS-1", fix(0, 90.5, 121.4), 400, "lat"},
		{"longitude out of range", "GPS-1", "GPS-1", "secret-GPS-1", fix(0, 31.2, 181), 400, "lon"},
		{"far in the future", "GPS-1", "GPS-1", "secret-GPS-1", fix(time.Hour, 31.2, 121.4), 400, "at"},
		{"negative speed", "GPS-1", "GPS-1", "secret-GPS-1", `{"at":"` + at(0) + `","lat":31,"lon":121,"speed":-3}`, 400, "speed"},
		{"one bad fix in a batch", "GPS-1", "GPS-1", "secret-GPS-1", "[" + fix(-2*time.Second, 31.2, 121.4) + "," + fix(-time.Second, 31.2, 200) + "]", 400, "[1].lon"},
		{"empty batch", "GPS-1", "GPS-1", "secret-GPS-1", `[]`, 400, ""},
		{"batch over the bound", "GPS-1", "GPS-1", "secret-GPS-1", "[" + strings.Join(batch101, ",") + "]", 400, ""},
		{"body over the bound", "GPS-1", "GPS-1", "secret-GPS-1", `{"at":"` + strings.Repeat(" ", 70<<10), 413, ""},
	} {
		code, field, msg := postFix(t, ts.URL, c.serial, c.user, c.pass, c.body)
		if code != c.code || field != c.field {
			t.Errorf("%s: %d field %q (%s), want %d field %q", c.name, code, field, msg, c.code, c.field)
		}
		if code == 400 && msg == "" {
			t.Errorf("%s: 400 without an error message", c.name)
		}
	}
	if n := stored("GPS-1") + stored("GPS-3"); n != 0 {
		t.Fatalf("refused requests stored %d fixes", n)
	}

	// accepted: one fix, then a batch (a camera's fixes kept while out of
	// coverage, older first)
	if code, _, msg := postFix(t, ts.URL, "GPS-1", "GPS-1", "secret-GPS-1", `{"at":"`+at(-10*time.Second)+`","lat":31.2304,"lon":121.4737,"speed":12.5,"direction":270}`); code != 201 {
		t.Fatalf("one fix: %d %s", code, msg)
	}
	if code, _, msg := postFix(t, ts.URL, "GPS-1", "GPS-1", "secret-GPS-1", "["+fix(-8*time.Second, 31.231, 121.474)+","+fix(-6*time.Second, 31.232, 121.475)+"]"); code != 201 {
		t.Fatalf("a batch: %d %s", code, msg)
	}
	if code, _, msg := postFix(t, ts.URL, "GPS-2", "GPS-2", "secret-GPS-2", fix(-5*time.Second, 39.9, 116.4)); code != 201 {
		t.Fatalf("GPS-2: %d %s", code, msg)
	}
	if n := stored("GPS-1"); n != 3 {
		t.Fatalf("GPS-1 has %d fixes, want 3", n)
	}

	// the track: supervisors of the wearer's unit and admins
	anon := apiClient{t: t, url: ts.URL}
	sup, admin, officer := anon.loginAs(db, index.RoleSupervisor), anon.loginAs(db, index.RoleAdmin), anon.loginAs(db, index.RoleOfficer)
	from := "?from=" + strings.ReplaceAll(at(-time.Minute), "+", "%2B")
	for _, c := range []struct {
		name   string
		client apiClient
		path   string
		code   int
		n      int
	}{
		{"own unit's camera", sup, "/api/devices/GPS-1/positions" + from, 200, 3},
		{"default period (the last hour)", sup, "/api/devices/GPS-1/positions", 200, 3},
		{"a narrower period", sup, "/api/devices/GPS-1/positions?from=" + at(-7*time.Second) + "&to=" + at(-5*time.Second), 200, 1},
		{"another unit's camera", sup, "/api/devices/GPS-2/positions", 403, 0},
		{"admin: any camera", admin, "/api/devices/GPS-2/positions", 200, 1},
		{"officer: no map", officer, "/api/devices/GPS-1/positions", 403, 0},
		{"from after to", admin, "/api/devices/GPS-1/positions?from=" + at(0) + "&to=" + at(-time.Hour), 400, 0},
		{"bad time", admin, "/api/devices/GPS-1/positions?from=yesterday", 400, 0},
		{"unknown camera", admin, "/api/devices/GPS-9/positions", 404, 0},
	} {
		code, _, arr := c.client.do("GET", c.path, "")
		if code != c.code || (code == 200 && len(arr) != c.n) {
			t.Errorf("%s: %d with %d fixes, want %d with %d", c.name, code, len(arr), c.code, c.n)
		}
	}
	_, _, track := sup.do("GET", "/api/devices/GPS-1/positions", "")
	if first := track[0].(map[string]any); first["lat"] != 31.2304 || first["speed"] != 12.5 || first["direction"] != 270.0 || first["source"] != "api" {
		t.Errorf("first fix of the track = %v", first)
	}

	// the live list carries each unit's latest fix, and its events follow
	// new fixes
	_, _, items := sup.do("GET", "/api/live", "")
	if len(items) != 1 {
		t.Fatalf("live list = %v", items)
	}
	if p, _ := items[0].(map[string]any)["position"].(map[string]any); p == nil || p["lat"] != 31.232 {
		t.Errorf("live item's position = %v, want the latest fix (lat 31.232)", items[0])
	}
	ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ectx, "GET", ts.URL+"/api/live/events", nil)
	req.AddCookie(sup.cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	if first := <-events; !strings.Contains(first, "31.232") {
		t.Fatalf("first event = %s", first)
	}
	if code, _, msg := postFix(t, ts.URL, "GPS-1", "GPS-1", "secret-GPS-1", fix(-time.Second, 31.24, 121.48)); code != 201 {
		t.Fatalf("a new fix: %d %s", code, msg)
	}
	for ev := range events { // ends with the request's timeout if the wall is never told
		if strings.Contains(ev, `"lat":31.24,`) {
			return
		}
	}
	t.Fatal("the live events never carried the new fix")
}

// A body the parser takes is one the index would store (every fix valid),
// and a refused one says why; no input panics it.
func FuzzParsePositions(f *testing.F) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		`{"at":"2026-12-01T11:59:58Z","lat":31.2304,"lon":121.4737}`,
		`{"at":"2026-12-01T11:59:58Z","lat":31.2304,"lon":121.4737,"speed":12.5,"direction":270}`,
		`[{"at":"2026-12-01T11:59:50Z","lat":31.23,"lon":121.47},{"at":"2026-12-01T11:59:55Z","lat":31.24,"lon":121.48}]`,
		`[]`, `{}`, `null`, `[null]`, `{"lat":1e400,"lon":0}`, `{"at":"2026-12-01T11:59:58Z","lat":"31","lon":121}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ps, err := web.ParsePositions(body, "CAM-F", now)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if len(ps) == 0 || len(ps) > index.MaxPositionBatch {
			t.Fatalf("%d fixes accepted", len(ps))
		}
		for _, p := range ps {
			if err := index.ValidatePosition(p, now); err != nil || p.Device != "CAM-F" || p.Source != index.PositionAPI {
				t.Fatalf("accepted an invalid fix %+v: %v", p, err)
			}
		}
	})
}

// The map's tile server: a bad template is refused at New; a good one is
// named to the map's pages, whose CSP admits images from its origin only;
// without one, images come from the platform alone.
func TestMapTiles(t *testing.T) {
	db := storagetest.NewDB(t)
	for _, bad := range []string{"tiles.example/{z}/{x}/{y}.png", "https://tiles.example/tile.png", "javascript:{z}{x}{y}"} {
		opts := testOptions(db)
		opts.Config.MapTiles = bad
		if _, err := web.New(opts); err == nil || !strings.Contains(err.Error(), "MapTiles") {
			t.Errorf("MapTiles %q: %v, want refused", bad, err)
		}
	}
	for _, c := range []struct{ tiles, meta, img string }{
		{"", `content=""`, "img-src 'self' data: blob:;"},
		{"https://tiles.police.example:8443/osm/{z}/{x}/{y}.png?k=a&b=1", `content="https://tiles.police.example:8443/osm/{z}/{x}/{y}.png?k=a&amp;b=1"`, "img-src 'self' data: blob: https://tiles.police.example:8443;"},
	} {
		opts := testOptions(db)
		opts.Config.MapTiles = c.tiles
		s := newServer(t, opts)
		ts := httptest.NewServer(s.Handler())
		sup := apiClient{t: t, url: ts.URL}.loginAs(db, index.RoleSupervisor)
		for _, page := range []string{"/map", "/wall"} {
			req, _ := http.NewRequest("GET", ts.URL+page, nil)
			req.AddCookie(sup.cookie)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			_, _ = bufio.NewReader(res.Body).WriteTo(&b)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(b.String(), `<meta name="bwc-map-tiles" `+c.meta+`>`) {
				t.Errorf("%s with tiles %q: %d, want the meta %s", page, c.tiles, res.StatusCode, c.meta)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, c.img) {
				t.Errorf("%s with tiles %q: CSP %q, want %s", page, c.tiles, csp, c.img)
			}
		}
		ts.Close()
	}
}

// A camera's posts have no session: the edge limits them per address like
// every request without one, wrong secrets included.
func TestDevicePositionsAreRateLimited(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	if _, err := db.CreateDevice(ctx, index.Device{Serial: "GPS-R", Secret: "secret-GPS-R"}); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(db)
	opts.Config.UnauthRate, opts.Config.UnauthBurst = 0.001, 3
	ts := httptest.NewServer(newServer(t, opts).Handler())
	t.Cleanup(ts.Close)
	body := fmt.Sprintf(`{"at":%q,"lat":31.2,"lon":121.4}`, time.Now().UTC().Format(time.RFC3339))
	var codes []int
	for _, pass := range []string{"wrong", "secret-GPS-R", "secret-GPS-R", "secret-GPS-R"} {
		code, _, _ := postFix(t, ts.URL, "GPS-R", "GPS-R", pass, body)
		codes = append(codes, code)
	}
	if want := []int{401, 201, 201, 429}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", codes, want)
	}
}

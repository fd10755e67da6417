package web_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

type fakeGB map[string]time.Time

func (f fakeGB) GBOnline() map[string]time.Time { return f }

// TestDevicesShowGBOnline: with GB/T 28181 on, a GB/T 28181 device in the
// devices API says whether it is online (registered and keeping alive)
// and when it was last heard from; a device without a GB/T 28181 ID, and
// every device when GB/T 28181 is off, says nothing of it.
func TestDevicesShowGBOnline(t *testing.T) {
	ctx := context.Background()
	seen := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		gb   web.GBRegistry
		want map[string]any // serial -> gb_online (nil: absent)
	}{
		{"on", fakeGB{"34020000001320000201": seen}, map[string]any{"GB-ON": true, "GB-OFF": false, "RTSP-ONLY": nil}},
		{"off", nil, map[string]any{"GB-ON": nil, "GB-OFF": nil, "RTSP-ONLY": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.NewDB(t)
			o := testOptions(db)
			o.GB = tc.gb
			ts := httptest.NewServer(newServer(t, o).Handler())
			t.Cleanup(ts.Close)
			c := apiClient{t: t, url: ts.URL}.loginAs(db, index.RoleAdmin)
			for serial, gbID := range map[string]string{"GB-ON": "34020000001320000201", "GB-OFF": "34020000001320000202", "RTSP-ONLY": ""} {
				if _, err := db.CreateDevice(ctx, index.Device{Serial: serial, Secret: "long-enough", GBID: gbID}); err != nil {
					t.Fatal(err)
				}
			}
			code, _, list := c.do("GET", "/api/devices", "")
			if code != 200 || len(list) != 3 {
				t.Fatalf("list: %d %v", code, list)
			}
			for _, x := range list {
				d := x.(map[string]any)
				serial := d["serial"].(string)
				if got := d["gb_online"]; got != tc.want[serial] {
					t.Errorf("%s: gb_online = %v, want %v", serial, got, tc.want[serial])
				}
				_, hasSeen := d["gb_last_seen"]
				if hasSeen != (tc.want[serial] == true) {
					t.Errorf("%s: gb_last_seen present %v", serial, hasSeen)
				}
			}
			code, one, _ := c.do("GET", "/api/devices/GB-ON", "")
			if code != 200 || one["gb_online"] != tc.want["GB-ON"] {
				t.Fatalf("get: %d %v", code, one)
			}
		})
	}
}

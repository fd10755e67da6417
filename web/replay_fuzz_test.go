package web

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzTimeRange: any from/to query is parsed into a range that ends after
// it starts, or refused with a field error.
func FuzzTimeRange(f *testing.F) {
	f.Add("2026-03-01T10:00:00Z", "2026-03-01T10:05:00.5+08:00")
	f.Add("", "yesterday")
	f.Fuzz(func(t *testing.T, from, to string) {
		r := httptest.NewRequest("GET", "/x?from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), nil)
		a, b, err := timeRange(r)
		if err == nil && !a.IsZero() && !b.IsZero() && !b.After(a) {
			t.Fatalf("accepted %q..%q: %v..%v", from, to, a, b)
		}
	})
}

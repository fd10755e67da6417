package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
)

// oneSession knows one session, started by method.
type oneSession struct{ method string }

func (s oneSession) SessionByToken(context.Context, string) (index.Session, error) {
	return index.Session{User: index.User{Login: "sv", Role: index.RoleSupervisor}, CSRFToken: "c", Method: s.method}, nil
}
func (oneSession) APITokenByToken(context.Context, string) (index.APIToken, error) {
	return index.APIToken{}, index.ErrUnauthenticated
}

// TestExternalMFAFromTheSession: only a session the identity provider
// started counts as second-factor checked elsewhere; never a password
// login's, whatever the request says.
func TestExternalMFAFromTheSession(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   bool
	}{
		{index.AuthOIDC, true},
		{index.AuthPassword, false},
		{"", false},
	} {
		rt := &router{sessions: oneSession{tc.method}}
		r := httptest.NewRequest(http.MethodGet, "/api/session", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: "token"})
		r.Header.Set("X-External-MFA", "true")
		p, _, err := rt.authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		if p.ExternalMFA != tc.want {
			t.Errorf("session method %q: ExternalMFA %v, want %v", tc.method, p.ExternalMFA, tc.want)
		}
	}
}

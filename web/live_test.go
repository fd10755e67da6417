package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// ownRelay is a relay whose sessions remember their owner, as
// relay.Server's do, for one live recording.
type ownRelay struct {
	live  uuid.UUID
	mu    sync.Mutex
	sess  map[string]relay.Viewer
	onEnd func(relay.ViewerStats, string)
}

func (f *ownRelay) Offer(_ context.Context, rec uuid.UUID, who relay.Viewer, _ string) (relay.Answer, error) {
	if rec != f.live {
		return relay.Answer{}, media.ErrNotLive
	}
	id := uuid.NewString()
	f.mu.Lock()
	f.sess[id] = who
	f.mu.Unlock()
	return relay.Answer{SDP: "v=0\r\n", Session: id}, nil
}
func (f *ownRelay) Patch(session, _ string) error {
	if _, _, ok := f.Session(session); !ok {
		return relay.ErrNoSession
	}
	return nil
}
func (f *ownRelay) Delete(session string) error {
	f.mu.Lock()
	who, ok := f.sess[session]
	delete(f.sess, session)
	f.mu.Unlock()
	if !ok {
		return relay.ErrNoSession
	}
	f.onEnd(relay.ViewerStats{Ref: relay.SessionRef(session), RecordingID: f.live, Viewer: who.Name}, "viewer left")
	return nil
}
func (f *ownRelay) Session(session string) (uuid.UUID, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	who, ok := f.sess[session]
	return f.live, who.Owner, ok
}
func (f *ownRelay) Viewers(uuid.UUID) int                          { return 0 }
func (f *ownRelay) LinkHeaders() []string                          { return nil }
func (f *ownRelay) OnViewerEnd(fn func(relay.ViewerStats, string)) { f.onEnd = fn }

// viewer is a client of the WHEP routes: a logged-in user or an API token.
type viewer struct {
	name  string
	user  apiClient
	token string
}

func (v viewer) send(t *testing.T, base, method, path, ctype string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	} else {
		req.AddCookie(v.user.cookie)
		req.Header.Set("X-CSRF-Token", v.user.csrf)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// TestWHEPSessionsBelongToTheirOpener: a viewing session is its opener's
// (by user ID, or by token ID for API tokens: two tokens of one name are
// two owners); anyone else's PATCH or DELETE is 404 as if it did not
// exist, except that an admin may end (DELETE) any. The session's ID is in
// the opener's Location only: the audit trail carries its reference.
func TestWHEPSessionsBelongToTheirOpener(t *testing.T) {
	db := storagetest.NewDB(t)
	// a live camera nobody checked out: unbound, in every supervisor's scope
	dev, err := db.CreateDevice(context.Background(), index.Device{Serial: "CAM-WHEP", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.CreateRecording(context.Background(), index.Recording{DeviceID: dev.ID}, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := r.ID
	rl := &ownRelay{live: rec, sess: map[string]relay.Viewer{}}
	opts := testOptions(db)
	opts.Relay = rl
	ts := httptest.NewServer(newServer(t, opts).Handler())
	t.Cleanup(ts.Close)
	admin := apiClient{t: t, url: ts.URL}.loginAs(db, index.RoleAdmin)
	token := func() string {
		code, tok, _ := admin.do("POST", "/api/tokens", `{"name":"wall","role":"supervisor"}`)
		if code != 201 {
			t.Fatalf("token: %d %v", code, tok)
		}
		return tok["token"].(string)
	}
	sup1 := viewer{name: "sup1", user: admin.loginAs(db, index.RoleSupervisor)}
	sup2 := viewer{name: "sup2", user: admin.loginAs(db, index.RoleSupervisor)}
	adm := viewer{name: "admin", user: admin}
	tok1, tok2 := viewer{name: "token wall #1", token: token()}, viewer{name: "token wall #2", token: token()}

	base := "/api/live/" + rec.String() + "/whep"
	open := func(v viewer) string {
		code, h, body := v.send(t, ts.URL, "POST", base, "application/sdp")
		if code != 201 || !strings.HasPrefix(h.Get("Location"), base+"/") {
			t.Fatalf("%s opens a view: %d %s, Location %q", v.name, code, body, h.Get("Location"))
		}
		return h.Get("Location")
	}
	of := map[string]string{} // session path by opener
	for _, v := range []viewer{sup1, sup2, tok1, tok2} {
		of[v.name] = open(v)
	}
	const frag = "application/trickle-ice-sdpfrag"
	steps := []struct {
		who    viewer
		method string
		of     string // whose session
		want   int
	}{
		{sup2, "PATCH", "sup1", 404},
		{sup2, "DELETE", "sup1", 404},
		{tok1, "PATCH", "sup1", 404},
		{tok1, "PATCH", "token wall #2", 404}, // same token name, another token
		{tok2, "DELETE", "token wall #1", 404},
		{sup1, "PATCH", "token wall #1", 404},
		{adm, "PATCH", "sup1", 404}, // an admin ends others' views, does not steer them
		{sup1, "PATCH", "sup1", 204},
		{tok1, "PATCH", "token wall #1", 204},
		{tok2, "DELETE", "token wall #2", 200},
		{adm, "DELETE", "sup2", 200},
		{sup2, "DELETE", "sup2", 404}, // gone
		{sup1, "DELETE", "sup1", 200},
	}
	for _, st := range steps {
		if code, _, body := st.who.send(t, ts.URL, st.method, of[st.of], frag); code != st.want {
			t.Fatalf("%s %s of %s's session: %d %s, want %d", st.who.name, st.method, st.of, code, body, st.want)
		}
	}
	// the wrong recording in the path, even for the opener
	if code, _, _ := tok1.send(t, ts.URL, "PATCH", strings.Replace(of["token wall #1"], rec.String(), uuid.NewString(), 1), frag); code != 404 {
		t.Fatalf("own session under another recording: %d, want 404", code)
	}

	// the trail names each view by its reference, never its ID
	code, _, events := admin.do("GET", "/api/audit?recording="+rec.String(), "")
	if code != 200 {
		t.Fatalf("audit: %d", code)
	}
	all, err := db.AuditEvents(context.Background(), index.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	trail := fmt.Sprintf("%+v", all) // every event, api.change of the routes included
	ended := false                   // the admin's DELETE of sup2's view is in the trail, by reference
	for _, e := range all {
		if e.Action == "api.change" && e.Role == index.RoleAdmin && e.Details["session"] == relay.SessionRef(of["sup2"][strings.LastIndex(of["sup2"], "/")+1:]) {
			ended = true
		}
	}
	if !ended {
		t.Fatalf("the admin ending sup2's view is not in the trail: %+v", all)
	}
	refs := map[string]int{}
	for name, path := range of {
		id := path[strings.LastIndex(path, "/")+1:]
		if strings.Contains(trail, id) {
			t.Fatalf("the audit trail shows %s's session ID %s", name, id)
		}
		refs[relay.SessionRef(id)] = 0
	}
	for _, e := range events {
		ev := e.(map[string]any)
		if a := ev["action"]; a == "live.view.start" || a == "live.view.stop" {
			ref := ev["details"].(map[string]any)["session"].(string)
			if _, ok := refs[ref]; !ok {
				t.Fatalf("%s names session %q, not the reference of a session", a, ref)
			}
			refs[ref]++
		}
	}
	for name, path := range of {
		want := 2 // started and stopped
		if name == tok1.name {
			want = 1 // still open
		}
		if n := refs[relay.SessionRef(path[strings.LastIndex(path, "/")+1:])]; n != want {
			t.Fatalf("%s's session in %d view events, want %d", name, n, want)
		}
	}
}

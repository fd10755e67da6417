package evidence_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/evidence"
)

// The JSON of a report (bwc verify -json) has "ok", the counts and every
// problem with its kind; no problems is an empty list, not null.
func TestReportJSON(t *testing.T) {
	rec := uuid.MustParse("01900000-0000-7000-8000-000000000001")
	rep := evidence.Report{Recordings: 2, Inits: 1, Segments: 3, Uploads: 1, Bytes: 42, Problems: []evidence.Problem{
		{Recording: rec, Seq: 2, Init: -1, Key: "r/000002.m4s", What: "SHA-256 mismatch"},
		{Recording: rec, Seq: -1, Init: 0, Key: "r/init-0.mp4", What: "object missing from the bucket"},
		{Recording: rec, Seq: -1, Init: -1, Upload: true, Key: "u/orig.mp4", What: "latest version is a delete marker"},
		{Recording: rec, Seq: -1, Init: -1, What: "no archived segments in the index"},
	}}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK                                   *bool
		Recordings, Inits, Segments, Uploads int
		Bytes                                int64
		Problems                             []map[string]any
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.OK == nil || *got.OK || got.Recordings != 2 || got.Inits != 1 || got.Segments != 3 || got.Uploads != 1 || got.Bytes != 42 {
		t.Fatalf("counts or ok wrong: %s", raw)
	}
	wantKinds := []string{"segment", "init", "upload", "recording"}
	if len(got.Problems) != len(wantKinds) {
		t.Fatalf("%d problems: %s", len(got.Problems), raw)
	}
	for i, p := range got.Problems {
		if p["kind"] != wantKinds[i] || p["recording"] != rec.String() || p["what"] != rep.Problems[i].What ||
			p["seq"] != float64(rep.Problems[i].Seq) || p["init"] != float64(rep.Problems[i].Init) {
			t.Errorf("problem %d: %v; want kind %s and the fields of %+v", i, p, wantKinds[i], rep.Problems[i])
		}
		if _, ok := p["key"]; ok != (rep.Problems[i].Key != "") {
			t.Errorf("problem %d: key present %v, want %v", i, ok, rep.Problems[i].Key != "")
		}
	}
	raw, err = json.Marshal(evidence.Report{Recordings: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ok":true,"recordings":1,"inits":0,"segments":0,"uploads":0,"bytes":0,"problems":[]}`; string(raw) != want {
		t.Fatalf("clean report: %s, want %s", raw, want)
	}
}

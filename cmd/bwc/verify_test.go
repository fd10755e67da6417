package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestVerifyAuditCommand(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := db.Audit(ctx, index.AuditEvent{Actor: "rev", Action: "recording.view"}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := verify(ctx, []string{"-audit", "-database-url", db.URL()}, &out); err != nil {
		t.Fatalf("verify on an intact trail: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "3 events, chain intact") {
		t.Fatalf("report %q", out.String())
	}
	su := storagetest.Superuser(t, db)
	for _, sql := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`,
		`UPDATE audit_events SET action = 'nothing' WHERE seq = 2`} {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	err := verify(ctx, []string{"-audit", "-database-url", db.URL()}, &out)
	if err == nil || !strings.Contains(out.String(), "audit event 2") {
		t.Fatalf("verify after an edit: err=%v report=%q; want a failure naming event 2", err, out.String())
	}
}

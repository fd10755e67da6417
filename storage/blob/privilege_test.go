package blob_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// serverIdentity runs blob.Setup (what `bwc setup-storage` runs) for a
// fresh bucket and a fresh user, twice (it is idempotent), the second
// time after another policy was attached to the user by hand, and returns
// the store opened as that user. The user and its policy are removed when
// the test ends.
func serverIdentity(t *testing.T) (*blob.Store, *blob.Store) {
	t.Helper()
	ctx := context.Background()
	cfg := storagetest.BlobConfig(t)
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	user := "t-srv-" + hex.EncodeToString(secret[:4])
	cfg.AccessKey, cfg.SecretKey = user, hex.EncodeToString(secret)
	adminCfg := storagetest.AdminConfig(t, cfg)
	setup := blob.Setup{Admin: adminCfg, Server: blob.Identity{AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey}, Buckets: cfg.Bucket}
	adm, err := madmin.NewWithOptions(cfg.Endpoint, &madmin.Options{Creds: credentials.NewStaticV4(adminCfg.AccessKey, adminCfg.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = adm.RemoveUser(ctx, user)
		_ = adm.RemoveCannedPolicy(ctx, blob.PolicyName(user))
	})
	if err := setup.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{"readwrite"}, User: user}); err != nil {
		t.Fatal(err)
	}
	if err := setup.Apply(ctx); err != nil {
		t.Fatalf("Setup again: %v", err)
	}
	info, err := adm.GetUserInfo(ctx, user)
	if err != nil || info.PolicyName != blob.PolicyName(user) {
		t.Fatalf("user's policies = %q, %v; want only %s", info.PolicyName, err, blob.PolicyName(user))
	}
	s, err := blob.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, storagetest.Admin(t, s)
}

// denied checks that err is the store refusing the request.
func denied(t *testing.T, what string, err error) {
	t.Helper()
	if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
		t.Errorf("%s as the server's identity: err = %v (code %q), want AccessDenied", what, err, code)
	}
}

// TestServerIdentityLeastPrivilege: the identity `bwc setup-storage`
// makes for the server does everything the platform does (check the
// bucket, write evidence with retention and legal hold, read and list
// versions) and nothing that destroys evidence: no delete of a version,
// with or without the governance bypass, no delete marker, no shorter
// retention, no change to the bucket's lock, versioning, policy or
// lifecycle, no other bucket.
func TestServerIdentityLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	s, admin := serverIdentity(t)
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket as the server: %v", err)
	}
	put, err := s.PutEvidence(ctx, evidence("p/seg", []byte("the camera's bytes"), false))
	if err != nil {
		t.Fatalf("PutEvidence as the server: %v", err)
	}
	if err := s.SetLegalHold(ctx, "p/seg", put.VersionID, true); err != nil {
		t.Fatalf("legal hold as the server: %v", err)
	}
	checkLock(t, s, "p/seg", put.VersionID, true)
	if err := s.SetLegalHold(ctx, "p/seg", put.VersionID, false); err != nil {
		t.Fatalf("release as the server: %v", err)
	}
	if l, err := s.LatestVersion(ctx, "p/seg"); err != nil || l.VersionID != put.VersionID {
		t.Fatalf("LatestVersion as the server = %+v, %v", l, err)
	}
	if sum, _, err := s.SHA256(ctx, "p/seg", put.VersionID); err != nil || len(sum) == 0 {
		t.Fatalf("read by version as the server: %v", err)
	}
	c, b := s.Client(), s.Bucket()
	// MinIO lets any holder of s3:PutObjectRetention shorten a GOVERNANCE
	// retention when the request carries the bypass header (it checks
	// s3:BypassGovernanceRetention OR s3:PutObjectRetention); the server
	// needs the latter to write evidence with retention. Even so it cannot
	// delete the version (below); in COMPLIANCE mode (the default) nobody
	// can shorten (TestComplianceRetentionBindsTheRootUser).
	soon, mode := time.Now().Add(time.Minute), minio.Governance
	if err := c.PutObjectRetention(ctx, b, "p/seg", minio.PutObjectRetentionOptions{VersionID: put.VersionID,
		GovernanceBypass: true, Mode: &mode, RetainUntilDate: &soon}); err != nil {
		t.Logf("shorten governance retention with the bypass header as the server: %v", err)
	}
	denied(t, "delete the version with governance bypass", c.RemoveObject(ctx, b, "p/seg", minio.RemoveObjectOptions{VersionID: put.VersionID, GovernanceBypass: true}))
	denied(t, "delete the version", c.RemoveObject(ctx, b, "p/seg", minio.RemoveObjectOptions{VersionID: put.VersionID}))
	denied(t, "delete marker", c.RemoveObject(ctx, b, "p/seg", minio.RemoveObjectOptions{}))
	denied(t, "change the object lock configuration", c.SetObjectLockConfig(ctx, b, nil, nil, nil))
	denied(t, "suspend versioning", c.SuspendVersioning(ctx, b))
	denied(t, "set a bucket policy", c.SetBucketPolicy(ctx, b, `{"Version":"2012-10-17","Statement":[]}`))
	lc := lifecycle.NewConfiguration()
	lc.Rules = []lifecycle.Rule{{ID: "expire", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 1}}}
	denied(t, "set a lifecycle", c.SetBucketLifecycle(ctx, b, lc))
	denied(t, "delete the bucket", c.RemoveBucket(ctx, b))
	denied(t, "create a bucket", c.MakeBucket(ctx, b+"-x", minio.MakeBucketOptions{ObjectLocking: true}))
	other := storagetest.NewStore(t) // another bucket, outside this identity's policy
	if _, err := c.BucketExists(ctx, other.Bucket()); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("another bucket as the server: err = %v, want AccessDenied", err)
	}
	// nothing above took effect: the version is there, the latest, locked
	if l, err := admin.LatestVersion(ctx, "p/seg"); err != nil || l.VersionID != put.VersionID || l.DeleteMarker {
		t.Fatalf("after the refused requests: latest = %+v, %v; want version %s", l, err, put.VersionID)
	}
	if on, err := admin.ObjectLockEnabled(ctx); err != nil || !on {
		t.Fatalf("object lock after the refused change = %v, %v", on, err)
	}
}

// TestServerPolicyNamesNoDestructiveAction: the policy document allows no
// action that deletes or bypasses, and denies those explicitly.
func TestServerPolicyNamesNoDestructiveAction(t *testing.T) {
	doc := string(blob.ServerPolicy("t-*"))
	allow, deny, ok := strings.Cut(doc, `"Effect":"Deny"`)
	if !ok {
		t.Fatalf("policy has no Deny statement: %s", doc)
	}
	for _, a := range []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
		"s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy", "s3:PutBucketVersioning", "s3:DeleteBucket", `s3:*`} {
		if strings.Contains(allow, `"`+a+`"`) {
			t.Errorf("policy allows %s: %s", a, doc)
		}
		if a != "s3:*" && !strings.Contains(deny, `"`+a+`"`) {
			t.Errorf("policy does not deny %s: %s", a, doc)
		}
	}
	if !strings.Contains(doc, `"arn:aws:s3:::t-*/*"`) {
		t.Errorf("policy's resources are not the buckets t-*: %s", doc)
	}
}

// TestSetupRefusesTheAdministratorAsServer: the server's identity must not
// be the administrator's.
func TestSetupRefusesTheAdministratorAsServer(t *testing.T) {
	cfg := storagetest.AdminConfig(t, storagetest.BlobConfig(t))
	err := blob.Setup{Admin: cfg, Server: blob.Identity{AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey}, Buckets: "t-*"}.Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "administrator") {
		t.Fatalf("Setup with the administrator as the server: err = %v, want a refusal", err)
	}
}

// TestComplianceRetentionBindsTheRootUser: evidence written in compliance
// mode cannot be deleted before its retention date even by the MinIO root
// user with the governance bypass, while in governance mode (the tests'
// stores) the root user can. The compliance object is tiny and kept for
// the shortest retention the platform allows (1 day, -retention's
// minimum): its bucket cannot be cleaned up before then.
func TestComplianceRetentionBindsTheRootUser(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []blob.RetentionMode{blob.Compliance, blob.Governance} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := storagetest.NewBucket(t)
			cfg.RetentionMode = mode
			s, err := blob.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			e := evidence("c/seg", []byte("x"), false)
			e.RetainUntil = time.Now().Add(24 * time.Hour)
			put, err := s.PutEvidence(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			admin := storagetest.Admin(t, s)
			got, _, err := admin.Client().GetObjectRetention(ctx, s.Bucket(), "c/seg", put.VersionID)
			if err != nil || got == nil || string(*got) != string(mode) {
				t.Fatalf("retention mode = %v, %v; want %s", got, err, mode)
			}
			if mode == blob.Compliance {
				soon, gov := time.Now().Add(time.Minute), minio.Governance
				for _, st := range []*blob.Store{s, admin} {
					err := st.Client().PutObjectRetention(ctx, s.Bucket(), "c/seg", minio.PutObjectRetentionOptions{
						VersionID: put.VersionID, GovernanceBypass: true, Mode: &gov, RetainUntilDate: &soon})
					if err == nil {
						t.Fatal("a compliance retention was shortened to governance")
					}
				}
			}
			err = admin.Client().RemoveObject(ctx, s.Bucket(), "c/seg", minio.RemoveObjectOptions{VersionID: put.VersionID, GovernanceBypass: true})
			_, _, readErr := admin.SHA256(ctx, "c/seg", put.VersionID)
			if mode == blob.Compliance && (err == nil || readErr != nil) {
				t.Fatalf("root user's bypass delete of a compliance version: err = %v, version read %v; want refused, still there", err, readErr)
			}
			if mode == blob.Governance && (err != nil || !errors.Is(readErr, blob.ErrNoObject)) {
				t.Fatalf("root user's bypass delete of a governance version: err = %v, version read %v; want deleted", err, readErr)
			}
		})
	}
}

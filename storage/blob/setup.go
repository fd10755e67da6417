package blob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Identity is an S3 user: its access key (the user name) and secret key.
type Identity struct {
	AccessKey string
	SecretKey string
}

// Setup is what an administrator prepares once, with the store's
// administrator (root) keys, so that the platform runs without them: the
// evidence bucket with object lock, and the platform's own user with a
// policy that allows what the platform does and nothing that destroys
// evidence (ServerPolicy). `bwc setup-storage` runs it; it is idempotent.
type Setup struct {
	// Admin: endpoint, region, TLS and the administrator's keys. Its
	// Bucket, when not empty, is created with object lock when missing.
	Admin Config
	// Server is the platform's user: created, or its secret key set.
	Server Identity
	// Buckets is the bucket name, or a pattern such as "t-*", that the
	// server's policy covers.
	Buckets string
}

// PolicyName is the name of the policy Setup attaches to the user with
// accessKey: "<access key>-evidence".
func PolicyName(accessKey string) string { return accessKey + "-evidence" }

// What the platform does with the bucket (storage/blob, the archive's
// reconciliation, evidence hold and verify, exports): check it exists and
// has object lock, list objects and their versions, write objects with
// retention and legal hold, read and stat objects by version, and abort
// its own failed multipart uploads (which removes no stored object).
var (
	serverBucketActions = []string{"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions",
		"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning", "s3:ListBucketMultipartUploads"}
	serverObjectActions = []string{"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion",
		"s3:PutObjectRetention", "s3:GetObjectRetention", "s3:PutObjectLegalHold", "s3:GetObjectLegalHold",
		"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
	// denied explicitly, so that no other policy attached to the user by
	// mistake can grant them: deleting objects or versions (a delete marker
	// hides evidence from a reader by key), bypassing governance retention,
	// and changing the bucket's lock, versioning, policy or lifecycle.
	serverDenied = []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
		"s3:DeleteBucket", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning",
		"s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutLifecycleConfiguration",
		"s3:PutReplicationConfiguration", "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"}
)

type statement struct {
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// ServerPolicy is the IAM policy of the platform's user on the buckets
// named by buckets (a name or a pattern such as "t-*").
func ServerPolicy(buckets string) []byte {
	bucket, objects := "arn:aws:s3:::"+buckets, "arn:aws:s3:::"+buckets+"/*"
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{"2012-10-17", []statement{
		{"Allow", serverBucketActions, []string{bucket}},
		{"Allow", serverObjectActions, []string{objects}},
		{"Deny", serverDenied, []string{bucket, objects}},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // a fixed shape of strings always marshals
	}
	return b
}

// validate checks the setup before anything is changed.
func (s Setup) validate() error {
	var errs []error
	if s.Admin.Endpoint == "" || s.Admin.AccessKey == "" || s.Admin.SecretKey == "" {
		errs = append(errs, errors.New("the administrator's endpoint, access key and secret key are required"))
	}
	if s.Server.AccessKey == "" || len(s.Server.SecretKey) < 8 {
		errs = append(errs, errors.New("the server's access key and a secret key of at least 8 characters are required"))
	}
	if s.Server.AccessKey == s.Admin.AccessKey {
		errs = append(errs, fmt.Errorf("the server's access key %q is the administrator's: give the server its own", s.Server.AccessKey))
	}
	if s.Buckets == "" || strings.ContainsAny(s.Buckets, "/\"") {
		errs = append(errs, fmt.Errorf("policy buckets %q: a bucket name or pattern is required", s.Buckets))
	}
	return errors.Join(errs...)
}

// Apply creates what is missing and brings the rest to the state above:
// the bucket (when Admin.Bucket is set), the policy (rewritten), the user
// (its secret set) and the user's policies (exactly this one).
func (s Setup) Apply(ctx context.Context) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("setup storage: %w", err)
	}
	if s.Admin.Bucket != "" {
		cfg := s.Admin
		cfg.RetentionMode = Governance // writes nothing
		st, err := Open(cfg)
		if err != nil {
			return err
		}
		err = st.CreateBucket(ctx)
		st.Close()
		if err != nil {
			return err
		}
	}
	adm, tr, err := s.adminClient()
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	policy := PolicyName(s.Server.AccessKey)
	if err := adm.AddCannedPolicy(ctx, policy, ServerPolicy(s.Buckets)); err != nil {
		return fmt.Errorf("setup storage: policy %s: %w", policy, err)
	}
	if err := adm.AddUser(ctx, s.Server.AccessKey, s.Server.SecretKey); err != nil {
		return fmt.Errorf("setup storage: user %s: %w", s.Server.AccessKey, err)
	}
	return attachOnly(ctx, adm, s.Server.AccessKey, policy)
}

// adminClient is a MinIO admin API client with the administrator's keys
// and its own transport (closed by the caller).
func (s Setup) adminClient() (*madmin.AdminClient, interface{ CloseIdleConnections() }, error) {
	tr, err := minio.DefaultTransport(s.Admin.UseTLS)
	if err != nil {
		return nil, nil, fmt.Errorf("setup storage: %w", err)
	}
	adm, err := madmin.NewWithOptions(s.Admin.Endpoint, &madmin.Options{
		Creds:     credentials.NewStaticV4(s.Admin.AccessKey, s.Admin.SecretKey, ""),
		Secure:    s.Admin.UseTLS,
		Transport: tr,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("setup storage: admin client for %s: %w", s.Admin.Endpoint, err)
	}
	return adm, tr, nil
}

// attachOnly leaves policy as the one policy attached to user.
func attachOnly(ctx context.Context, adm *madmin.AdminClient, user, policy string) error {
	info, err := adm.GetUserInfo(ctx, user)
	if err != nil {
		return fmt.Errorf("setup storage: user %s: %w", user, err)
	}
	var others []string
	attached := false
	for _, p := range strings.Split(info.PolicyName, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case policy:
			attached = true
		default:
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		if _, err := adm.DetachPolicy(ctx, madmin.PolicyAssociationReq{Policies: others, User: user}); err != nil {
			return fmt.Errorf("setup storage: detach %v from %s: %w", others, user, err)
		}
	}
	if !attached {
		if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policy}, User: user}); err != nil {
			return fmt.Errorf("setup storage: attach %s to %s: %w", policy, user, err)
		}
	}
	return nil
}

package main

import (
	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/peer"
	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/web"
)

// Interface guards: the implementations build wires into web meet the
// interfaces web declares for them, one line each, grouped by web's handler
// groups. (They live here, next to the wiring, because the implementing
// packages cannot import web.)

// the database behind every group, and the request plumbing
var _ web.Index = (*index.DB)(nil)
var _ web.AuditLog = (*index.DB)(nil)
var _ web.Sessions = (*index.DB)(nil)

// accounts
var _ web.Accounts = (*index.DB)(nil)

// roster
var _ web.RosterStore = (*index.DB)(nil)
var _ web.CameraEndpoint = (*ingest.Server)(nil)

// incidents
var _ web.IncidentStore = (*index.DB)(nil)
var _ web.AutoLinker = (*index.DB)(nil)
var _ web.Dashboards = (*index.DB)(nil)
var _ web.TimelineStore = (*index.DB)(nil)

// recordings, holds and replay
var _ web.RecordingStore = (*index.DB)(nil)
var _ web.EvidenceHolds = (*evidence.Holder)(nil)
var _ web.ReplayStore = (*index.DB)(nil)
var _ web.ObjectStore = (*blob.Store)(nil)

// live
var _ web.Ingest = (*ingest.Server)(nil)
var _ web.LiveSource = (*ingest.Server)(nil)
var _ web.LiveRelay = (*relay.Server)(nil)

// exports
var _ web.ExportStore = (*index.DB)(nil)
var _ web.ExportBuilder = (*export.Exporter)(nil)

// uploads
var _ web.UploadService = (*upload.Service)(nil)
var _ web.UploadStore = (*index.DB)(nil)

// live views across nodes
var _ web.LiveCluster = (*peer.Link)(nil)
var _ web.PeerLink = (*peer.Link)(nil)
var _ relay.Puller = (*peer.Link)(nil)
var _ peer.Local = (*ingest.Server)(nil)

// Command bwc is the body-worn camera evidence platform: one binary, with
// subcommands. See the README for every setting.
//
//	bwc serve      run the platform (HTTP, RTSP ingest, archive, WebRTC relay)
//	bwc migrate    apply the database schema (as the schema owner)
//	bwc setup-storage  create the evidence bucket and the server's MinIO user (administrator's keys)
//	bwc seed-demo  create the demo officer, camera, incident and accounts
//	bwc useradd    create an account (password on standard input)
//	bwc verify     check stored evidence, the audit trail, or an evidence package offline
//	bwc export-key print the public key that evidence packages are signed with
//	bwc cam        simulated body cameras (load test: -n N -metrics URL)
//	bwc relayload  the live relay's figures: N recordings x M WebRTC viewers in one process
//	bwc clusterload  per-node figures of 1, 2, 3... nodes behind HAProxy on the same cameras and viewers
//	bwc viewerload   a node's cost per camera and per WebRTC viewer, for a baseline and a result binary in one run
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bwc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: bwc serve|migrate|setup-storage|seed-demo|useradd|verify|export-key|cam|relayload|clusterload|viewerload [flags] (bwc COMMAND -h lists the flags)")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		cfg, err := loadConfig(cmd, rest)
		if err != nil {
			return err
		}
		return serve(ctx, cfg)
	case "migrate":
		cfg, err := loadConfig(cmd, rest)
		if err != nil {
			return err
		}
		return migrateCmd(ctx, cfg)
	case "setup-storage":
		return setupStorage(ctx, rest, os.Stdout)
	case "seed-demo":
		cfg, err := loadConfig(cmd, rest)
		if err != nil {
			return err
		}
		return seedDemo(ctx, cfg)
	case "useradd":
		return useradd(ctx, rest, os.Stdin)
	case "verify":
		return verify(ctx, rest, os.Stdout)
	case "export-key":
		return exportKey(rest, os.Stdout)
	case "cam":
		return cam(ctx, rest, os.Stdout)
	case "relayload":
		return relayload(ctx, rest, os.Stdout)
	case "clusterload":
		return clusterload(ctx, rest, os.Stdout)
	case "viewerload":
		return viewerload(ctx, rest, os.Stdout)
	case "loadviewers": // viewerload's viewer processes (not listed)
		return loadviewers(ctx, rest, os.Stdin, os.Stdout)
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate, setup-storage, seed-demo, useradd, verify, export-key, cam, relayload, clusterload or viewerload", cmd)
	}
}

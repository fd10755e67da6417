package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bwcplatform/bwc/storage/index"
)

// useradd creates an account (the first admin, typically). The password is
// read from standard input so that it never appears in a process list.
//
//	echo 'long password' | bwc useradd -login chief -role admin
func useradd(ctx context.Context, args []string, stdin io.Reader) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bwc useradd", flag.ContinueOnError)
	cfg.register(fs)
	login := fs.String("login", "", "login of the new account")
	role := fs.String("role", "", "officer, supervisor, reviewer or admin")
	unit := fs.String("unit", "", "the unit the account belongs to")
	badge := fs.String("officer-badge", "", "for officer accounts: the officer's badge number")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	pw, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password from standard input: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	db, _, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	u := index.User{Login: *login, Role: *role, Unit: *unit}
	if *badge != "" {
		officers, err := db.Officers(ctx)
		if err != nil {
			return err
		}
		for _, o := range officers {
			if o.Badge == *badge {
				u.OfficerID = &o.ID
			}
		}
		if u.OfficerID == nil {
			return fmt.Errorf("no officer with badge %q", *badge)
		}
	}
	if _, err := db.CreateUser(ctx, u, pw); err != nil {
		return err
	}
	fmt.Printf("user %s (%s) created\n", u.Login, u.Role)
	return nil
}

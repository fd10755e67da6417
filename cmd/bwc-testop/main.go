// Command bwc-testop runs a real OpenID Connect provider for the browser
// tests (web/e2e/oidc.test.mjs): zitadel's provider over the in-memory
// storage of web/oidctest, with one client and users from flags.
// It prints its issuer URL on the first line of standard output once it
// listens, and serves until SIGINT or SIGTERM. A test tool, never a
// production identity provider.
//
//	bwc-testop -client-id bwc -client-secret s3cret \
//	  -redirect-url http://127.0.0.1:8080/auth/oidc/callback \
//	  -user 'sv.chen:password:bwc-supervisors,staff:north'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bwcplatform/bwc/web/oidctest"
)

// users is the repeated -user flag: username:password:group,group[:unit[:badge]].
type users []oidctest.User

func (u *users) String() string { return fmt.Sprint(len(*u), " users") }

func (u *users) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 3 || len(parts) > 5 || parts[0] == "" || parts[1] == "" {
		return errors.New("want username:password:group,group[:unit[:badge]]")
	}
	user := oidctest.User{Subject: "sub-" + parts[0], Username: parts[0], Password: parts[1]}
	for g := range strings.SplitSeq(parts[2], ",") {
		if g != "" {
			user.Groups = append(user.Groups, g)
		}
	}
	if len(parts) > 3 {
		user.Unit = parts[3]
	}
	if len(parts) > 4 {
		user.Badge = parts[4]
	}
	*u = append(*u, user)
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bwc-testop:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bwc-testop", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listening address (port 0: any free port)")
	clientID := fs.String("client-id", "bwc", "the client's ID")
	secret := fs.String("client-secret", "", "the client's secret")
	var people users
	var redirectURLs []string
	fs.Func("redirect-url", "a callback URL of the client (repeatable)", func(v string) error {
		redirectURLs = append(redirectURLs, v)
		return nil
	})
	fs.Var(&people, "user", "a user: username:password:group,group[:unit[:badge]] (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	issuer := "http://" + ln.Addr().String()
	op, err := oidctest.New(oidctest.Config{Issuer: issuer, ClientID: *clientID, ClientSecret: *secret,
		RedirectURIs: redirectURLs, Users: people})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: op, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Println(issuer)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

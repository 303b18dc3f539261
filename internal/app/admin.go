package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/omnigate/omnigate/internal/admin"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// Admin returns the admin API and status page handler: the one the admin
// listener serves, with the token server.admin_token_env names. Until
// serve gives the gateway its config source to reload from, POST
// /admin/reload answers 501.
func (g *Gateway) Admin() http.Handler { return g.admin }

// initAdmin reads the admin token and builds the admin handler, without a
// reload.
func (g *Gateway) initAdmin(cfg *config.Config) error {
	tok, err := adminToken(cfg.Server, os.Getenv)
	if err != nil {
		return err
	}
	g.adminToken = tok
	g.admin = g.newAdmin(nil)
	return nil
}

func (g *Gateway) newAdmin(reload func(context.Context) error) *admin.Handler {
	return admin.New(admin.Options{Core: g.core, Metrics: g.metrics.Registry(), Config: g.Config,
		Build: admin.ReadBuild(version()), Reload: reload, Purge: g.answers.Purge, Keys: g.keys, Token: g.adminToken, Log: g.log})
}

// adminToken reads the token server.admin_token_env names. A name whose
// variable is empty is an error rather than no token: whoever set the
// name meant the admin API to need one.
func adminToken(sc config.Server, getenv func(string) string) (string, error) {
	if sc.AdminTokenEnv == "" {
		return "", nil
	}
	if tok := getenv(sc.AdminTokenEnv); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("server.admin_token_env names %s, which is empty or unset: the admin API would take no token", sc.AdminTokenEnv)
}

// checkAdminAddr refuses an admin address beyond loopback without a
// token: the admin API shows the configuration and reloads it.
func checkAdminAddr(addr, token string) error {
	if addr == config.AdminOff || token != "" {
		return nil
	}
	if err := checkLoopback(addr); err != nil {
		return fmt.Errorf("server.admin_addr %q is not a loopback address and no admin token is set: the admin API shows the configuration and can reload it, "+
			"so it needs a bearer token beyond loopback; set server.admin_token_env to the name of a variable holding one, or listen on 127.0.0.1", addr)
	}
	return nil
}

// serveAdmin starts the admin listener at sc.AdminAddr ("off": none) and
// prints its address, which it returns as a URL ("" when off); stop shuts
// it down. reload is what POST /admin/reload runs.
func (g *Gateway) serveAdmin(sc config.Server, reload func(context.Context) error, stdout io.Writer) (stop func(), url string, err error) {
	addr := sc.AdminAddr
	if addr == config.AdminOff {
		return func() {}, "", nil
	}
	if err := checkAdminAddr(addr, g.adminToken); err != nil {
		return nil, "", err
	}
	tlsConf, err := g.listenerTLS("server.admin_tls", sc.AdminTLS, httpProtos)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("admin listener: %w", err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); g.adminToken == "" && (!ok || !ta.IP.IsLoopback()) {
		ln.Close() // "localhost" that /etc/hosts sends elsewhere
		return nil, "", fmt.Errorf("server.admin_addr %q listens on %s, which is not loopback, and no admin token is set", addr, ln.Addr())
	}
	g.admin = g.newAdmin(reload)
	srv := &http.Server{
		Handler:           g.admin,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	url = scheme(sc.AdminTLS) + "://" + ln.Addr().String()
	g.log.Info("admin listener", "addr", ln.Addr().String(), "token", g.adminToken != "", "tls", sc.AdminTLS.On(), "mtls", sc.AdminTLS.Mutual())
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	go srv.Serve(ln)
	fmt.Fprintf(stdout, "omnigate: admin on %s%s\n", url, tlsMark(sc.AdminTLS))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}, url, nil
}

var _ admin.Keys = (*auth.Directory)(nil)

// Core returns the request core, for handlers built outside this package
// (the admin API's tests build theirs with options of their own).
func (g *Gateway) Core() *dispatch.Core { return g.core }

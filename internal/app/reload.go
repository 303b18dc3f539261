package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// reloader reloads the gateway's configuration from where it first came
// from (the file, else the built-in default, with the same environment
// overrides): on SIGHUP, on POST /admin/reload, and when the watched file
// changes. A config that does not load or validate is rejected, with its
// reason logged, and the running one stays. Listener settings (server.*,
// logging.format) need a restart: a reload that changes them says so and
// applies the rest.
type reloader struct {
	path   string
	getenv func(string) string
	gw     *Gateway
	log    *slog.Logger
	level  *slog.LevelVar // set from logging.level unless --log-level fixed it
	fixed  bool           // --log-level was given

	mu  sync.Mutex // one reload at a time
	sum [sha256.Size]byte
}

// started records the content of the file the gateway started from, so
// the first poll does not take it for a change.
func (r *reloader) started() {
	if r.path == "" {
		return
	}
	if b, err := os.ReadFile(r.path); err == nil {
		r.mu.Lock()
		r.sum = sha256.Sum256(b)
		r.mu.Unlock()
	}
}

// Reload loads and applies the configuration; the error says why it was
// rejected.
func (r *reloader) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(nil)
}

// reloadLocked applies the config; data is the file's content when the
// caller read it already.
func (r *reloader) reloadLocked(data []byte) error {
	if r.path != "" && data == nil {
		b, err := os.ReadFile(r.path)
		if err != nil {
			r.log.Error("config reload rejected", "path", r.path, "err", err)
			return err
		}
		data = b
	}
	cfg, err := config.FromEnvAndFile(r.path, r.getenv)
	if err != nil {
		r.log.Error("config reload rejected; the running config stays", "path", r.path, "err", err)
		return err
	}
	old := r.gw.Config()
	restart := needsRestart(old, cfg)
	keepStartOnly(cfg, old)
	if err := r.gw.Reload(cfg, old.Server.ShutdownGrace.D()); err != nil {
		r.log.Error("config reload rejected; the running config stays", "path", r.path, "err", err)
		return err
	}
	r.sum = sha256.Sum256(data)
	if !r.fixed {
		if l, err := logLevel(cfg.Logging.Level); err == nil {
			r.level.Set(l)
		}
	}
	if len(restart) > 0 {
		r.log.Warn("config reloaded; these keys take effect only after a restart", "keys", restart)
	} else {
		r.log.Info("config reloaded", "path", r.path, "models", len(cfg.Models))
	}
	return nil
}

// watch polls the config file every interval until ctx ends and reloads it
// when its content changes. Polling, not inotify: it sees an editor's
// rename-over and a ConfigMap's symlink swap alike, on every OS.
func (r *reloader) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastMod time.Time
	var lastSize int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(r.path)
		if err != nil {
			continue // being replaced; the next poll sees the new file
		}
		if fi.ModTime().Equal(lastMod) && fi.Size() == lastSize {
			continue
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		data, err := os.ReadFile(r.path)
		if err != nil {
			continue
		}
		r.mu.Lock()
		sum := sha256.Sum256(data)
		if !bytes.Equal(sum[:], r.sum[:]) {
			r.log.Info("config file changed; reloading", "path", r.path)
			r.reloadLocked(data) // rejected: logged; the next change is tried again
			r.sum = sum          // a bad file is not retried until it changes
		}
		r.mu.Unlock()
	}
}

// keepStartOnly copies into next the keys read only at start from old,
// the config being served, so next says what the gateway really does
// (GET /admin/config shows it).
func keepStartOnly(next, old *config.Config) {
	next.Server = old.Server
	next.Logging.Format, next.Logging.Access, next.Logging.Bodies = old.Logging.Format, old.Logging.Access, old.Logging.Bodies
	next.Tracing = old.Tracing
	next.Cache = old.Cache
	next.Jobs = old.Jobs
	next.Auth.Limits = old.Auth.Limits
	next.Auth.Store = old.Auth.Store
}

// needsRestart lists the keys that differ between old and next but are
// read only at start.
func needsRestart(old, next *config.Config) []string {
	var keys []string
	a, b := old.Server, next.Server
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(a.Addr != b.Addr, "server.addr")
	add(a.AdminAddr != b.AdminAddr, "server.admin_addr")
	add(a.AdminTokenEnv != b.AdminTokenEnv, "server.admin_token_env")
	add(a.GRPCAddr != b.GRPCAddr, "server.grpc_addr")
	add(a.TLS != b.TLS, "server.tls")
	add(a.AdminTLS != b.AdminTLS, "server.admin_tls")
	add(a.GRPCTLS != b.GRPCTLS, "server.grpc_tls")
	add(a.APIMetrics() != b.APIMetrics(), "server.metrics_on_api")
	add(a.MaxBodyBytes != b.MaxBodyBytes, "server.max_body_bytes")
	add(a.MaxBufferedBytes != b.MaxBufferedBytes, "server.max_buffered_bytes")
	add(a.ReadTimeout != b.ReadTimeout, "server.read_timeout")
	add(a.ReadHeaderTimeout != b.ReadHeaderTimeout, "server.read_header_timeout")
	add(a.MaxConns != b.MaxConns, "server.max_conns")
	add(a.MaxConnsPerClient != b.MaxConnsPerClient, "server.max_conns_per_client")
	add(a.Watch() != b.Watch(), "server.watch_config")
	add(old.Logging.Format != next.Logging.Format, "logging.format")
	add(old.Logging.AccessOn() != next.Logging.AccessOn() || old.Logging.Bodies != next.Logging.Bodies, "logging.access")
	add(old.Tracing.Enabled != next.Tracing.Enabled || old.Tracing.Endpoint != next.Tracing.Endpoint ||
		old.Tracing.Ratio() != next.Tracing.Ratio() || old.Tracing.ServiceName != next.Tracing.ServiceName ||
		old.Tracing.HeadersEnv != next.Tracing.HeadersEnv, "tracing")
	add(old.Cache != next.Cache, "cache")
	add(!reflect.DeepEqual(old.Jobs, next.Jobs), "jobs")
	add(old.Auth.Limits != next.Auth.Limits, "auth.limits")
	add(old.Auth.Store != next.Auth.Store, "auth.store")
	return keys
}

package app

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// TestNeedsRestart: the start-only keys a reload changes are named, and
// the config served afterwards keeps their running values.
func TestNeedsRestart(t *testing.T) {
	old := config.Default()
	old.ApplyDefaults()
	next := config.Default()
	next.Server.Addr = "127.0.0.1:9999"
	next.Logging.Format = "json"
	next.Logging.Level = "debug" // applied at once: not listed
	next.Tracing.Enabled = true
	next.Auth.Store.Kind, next.Auth.Store.Postgres.DSNEnv = config.KeyStorePostgres, "KEYS_DSN"
	next.Models[0].Aliases = append(next.Models[0].Aliases, "fast") // applied
	next.Auth.Keys = []config.APIKey{{Name: "k", Hash: "sha256:" + strings.Repeat("0", 64)}}
	next.ApplyDefaults()
	if d := cmp.Diff([]string{"server.addr", "logging.format", "tracing", "auth.store"}, needsRestart(old, next)); d != "" {
		t.Errorf("needsRestart (-want +got):\n%s", d)
	}
	keepStartOnly(next, old)
	if next.Server.Addr != old.Server.Addr || next.Logging.Format != "text" || next.Tracing.Enabled || next.Auth.Store != old.Auth.Store {
		t.Errorf("start-only keys not kept: %+v %+v %+v %+v", next.Server, next.Logging, next.Tracing, next.Auth.Store)
	}
	if next.Logging.Level != "debug" || len(next.Auth.Keys) != 1 || len(next.Models[0].Aliases) != len(old.Models[0].Aliases)+1 {
		t.Error("a reloadable key was reverted")
	}
	if len(needsRestart(old, old)) != 0 {
		t.Error("an unchanged config needs a restart")
	}
}

// TestNeedsRestartTLS: the listeners' certificate files and
// metrics_on_api are read at start; a deployment's tls is reloaded (and a
// metrics_on_api that says what the default did changes nothing).
func TestNeedsRestartTLS(t *testing.T) {
	old := config.Default()
	old.ApplyDefaults()
	next := config.Default()
	next.Server.TLS = config.ListenerTLS{CertFile: "a.crt", KeyFile: "a.key"}
	next.Server.AdminTLS.ClientCAFile = "clients.pem"
	no := false
	next.Server.MetricsOnAPI = &no
	next.Models[0].Deployments[0].TLS.ServerName = "engine.internal"
	next.ApplyDefaults()
	if d := cmp.Diff([]string{"server.tls", "server.admin_tls", "server.metrics_on_api"}, needsRestart(old, next)); d != "" {
		t.Errorf("needsRestart (-want +got):\n%s", d)
	}
	yes := true
	same := config.Default()
	same.Server.MetricsOnAPI = &yes // the default on loopback
	same.ApplyDefaults()
	if keys := needsRestart(old, same); len(keys) != 0 {
		t.Errorf("needsRestart: %v", keys)
	}
}

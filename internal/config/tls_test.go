package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/certs/certstest"
)

// TestTLSFromYAML: every tls key decodes where docs/configuration.md puts
// it, and an unknown one is named.
func TestTLSFromYAML(t *testing.T) {
	cfg, err := Parse([]byte(`
server:
  tls: {cert_file: api.crt, key_file: api.key, client_ca_file: clients.pem}
  admin_tls: {cert_file: admin.crt, key_file: admin.key}
  grpc_tls: {cert_file: grpc.crt, key_file: grpc.key}
  metrics_on_api: false
models:
  - name: m
    deployments:
      - name: d
        url: https://engine:8443/v1
        tls: {ca_file: ca.pem, cert_file: gw.crt, key_file: gw.key, server_name: engine.internal, insecure_skip_verify: false}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if diff := cmp.Diff(ListenerTLS{CertFile: "api.crt", KeyFile: "api.key", ClientCAFile: "clients.pem"}, s.TLS); diff != "" {
		t.Errorf("server.tls (-want +got):\n%s", diff)
	}
	if s.AdminTLS.CertFile != "admin.crt" || s.GRPCTLS.KeyFile != "grpc.key" || s.MetricsOnAPI == nil || *s.MetricsOnAPI {
		t.Errorf("server: %+v", s)
	}
	want := UpstreamTLS{CAFile: "ca.pem", CertFile: "gw.crt", KeyFile: "gw.key", ServerName: "engine.internal"}
	if diff := cmp.Diff(want, cfg.Models[0].Deployments[0].TLS); diff != "" {
		t.Errorf("deployments[0].tls (-want +got):\n%s", diff)
	}
	_, err = Parse([]byte("server: {tls: {cert: a.pem}}\n"), "t.yaml")
	if err == nil || !strings.Contains(err.Error(), `unknown key "cert" in a listener's tls`) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestAPIMetrics(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		addr string
		set  *bool
		want bool
	}{
		{"127.0.0.1:8080", nil, true},
		{"127.0.0.2:8080", nil, true},
		{"[::1]:8080", nil, true},
		{"localhost:8080", nil, true},
		{"0.0.0.0:8080", nil, false},
		{":8080", nil, false},
		{"10.0.0.5:8080", nil, false},
		{"gateway.internal:8080", nil, false},
		{"0.0.0.0:8080", &yes, true},
		{"127.0.0.1:8080", &no, false},
	}
	for _, tt := range tests {
		if got := (Server{Addr: tt.addr, MetricsOnAPI: tt.set}).APIMetrics(); got != tt.want {
			t.Errorf("addr %s, metrics_on_api %v: %v, want %v", tt.addr, tt.set, got, tt.want)
		}
	}
}

// TestFileProblems: certificate files that do not exist or load are
// problems named by their key; a listener that is off is not looked at.
func TestFileProblems(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	_, certFile, keyFile := ca.IssueFiles(t, dir, "leaf")
	_, _, otherKey := ca.IssueFiles(t, dir, "other")
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := validConfig()
	cfg.Server.TLS = ListenerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.File}
	cfg.Server.AdminTLS = ListenerTLS{CertFile: certFile, KeyFile: otherKey}
	cfg.Server.GRPCTLS = ListenerTLS{CertFile: missing, KeyFile: keyFile}
	cfg.Models[1].Deployments[1].TLS = UpstreamTLS{CAFile: garbage, CertFile: certFile, KeyFile: keyFile}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	var paths []string
	for _, p := range cfg.FileProblems() {
		paths = append(paths, p.Path)
	}
	want := []string{"server.admin_tls", "server.grpc_tls", "models[1].deployments[1].tls.ca_file"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s\n%v", diff, cfg.FileProblems())
	}
	ps := cfg.FileProblems()
	if !strings.Contains(ps[1].Message, "cert_file "+missing+" does not exist") || !strings.Contains(ps[2].Message, "holds no PEM certificate") {
		t.Errorf("messages: %v", ps)
	}

	cfg.Server.AdminAddr, cfg.Server.GRPCAddr = AdminOff, GRPCOff
	if ps := cfg.FileProblems(); len(ps) != 1 {
		t.Errorf("with the admin and gRPC listeners off: %v", ps)
	}
	ws := cfg.Warnings(func(string) string { return "set" })
	if len(ws) != 1 || ws[0].Path != "models[1].deployments[1].tls.ca_file" {
		t.Errorf("warnings: %v", ws)
	}
}

// TestFromEnvAndFileChecksCertificates: serve (and a reload) refuse a
// config whose certificate files do not load, naming the key.
func TestFromEnvAndFileChecksCertificates(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "omnigate.yaml", strings.Replace(minimalFile, `addr: "127.0.0.1:9000"`,
		`addr: "127.0.0.1:9000", tls: {cert_file: "`+filepath.Join(dir, "absent.crt")+`", key_file: "`+filepath.Join(dir, "absent.key")+`"}`, 1))
	_, err := FromEnvAndFile(file, func(string) string { return "" })
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != "server.tls" ||
		!strings.Contains(ve.Problems[0].Message, "absent.crt does not exist") {
		t.Fatalf("got %v", err)
	}
}

func TestInsecureWarning(t *testing.T) {
	cfg := validConfig()
	cfg.Models[1].Deployments[1].TLS.InsecureSkipVerify = true
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	ws := cfg.Warnings(func(string) string { return "set" })
	want := []Problem{{Path: "models[1].deployments[1].tls.insecure_skip_verify", Message: InsecureWarning}}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

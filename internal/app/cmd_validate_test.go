package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

func TestValidateConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
models:
  - name: m
    deployments:
      - {name: a, kind: sim, profile: qwen3-omni-7b}
      - {name: b, kind: openai, url: "http://h:8000/v1", api_key_env: B_KEY}
`)
	bad := write("bad.yaml", `
server: {addr: nowhere}
models:
  - name: m
    deployments: [{name: a, kind: openai}]
`)
	typo := write("typo.yaml", "server:\n  adr: :1\n")
	certs := write("certs.yaml", `
server: {tls: {cert_file: /nonexistent/tls.crt, key_file: /nonexistent/tls.key}}
models:
  - name: m
    deployments: [{name: a, url: "https://h:8443/v1", tls: {insecure_skip_verify: true}}]
`)
	missing := filepath.Join(dir, "missing.yaml")

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string // stdout lines
		wantErr string
	}{
		{name: "ok with a warning", args: []string{good},
			want: []string{
				good + ": ok (1 models, 2 deployments)",
				good + ": warning: models[0].deployments[1].api_key_env: environment variable B_KEY is unset or empty; serve needs it set",
			}},
		{name: "ok, key set", args: []string{good}, env: map[string]string{"B_KEY": "k"},
			want: []string{good + ": ok (1 models, 2 deployments)"}},
		{name: "certificate files elsewhere", args: []string{certs},
			want: []string{
				certs + ": ok (1 models, 1 deployments)",
				certs + ": warning: models[0].deployments[0].tls.insecure_skip_verify: " + config.InsecureWarning,
				certs + ": warning: server.tls: cert_file /nonexistent/tls.crt does not exist",
			}},
		{name: "every problem", args: []string{bad}, wantErr: "1 of 1 files have problems",
			want: []string{
				bad + `: server.addr: "nowhere" is not host:port (missing port in address)`,
				bad + ": models[0].deployments[0].url: kind openai needs a url, such as http://10.0.0.5:8000/v1",
			}},
		{name: "unknown key with line", args: []string{typo}, wantErr: "1 of 1 files have problems",
			want: []string{typo + `:2: unknown key "adr" in server`}},
		{name: "several files, one bad", args: []string{good, missing}, env: map[string]string{"B_KEY": "k"},
			wantErr: "1 of 2 files have problems",
			want: []string{
				good + ": ok (1 models, 2 deployments)",
				missing + ": read config: open " + missing + ": no such file or directory",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := validateConfigFiles(context.Background(), tt.args, &stdout, &stderr, func(k string) string { return tt.env[k] })
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateConfigUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runValidateConfig(context.Background(), []string{"--help"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: error = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "Usage: omnigate validate-config FILE...") || stdout.Len() != 0 {
		t.Errorf("--help: stdout %q, stderr %q; want usage on stderr only", stdout.String(), stderr.String())
	}

	stderr.Reset()
	err = runValidateConfig(context.Background(), nil, &stdout, &stderr)
	if !errors.Is(err, errUsage) {
		t.Errorf("no files: error = %v, want errUsage", err)
	}
	if !strings.Contains(stderr.String(), "no FILE given") {
		t.Errorf("no files: stderr %q", stderr.String())
	}
}

// TestValidateConfigShippedFiles runs the command over examples/, as an
// operator would, and expects every file to pass.
func TestValidateConfigShippedFiles(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	var stdout, stderr bytes.Buffer
	env := func(string) string { return "set" }
	if err := validateConfigFiles(context.Background(), files, &stdout, &stderr, env); err != nil {
		t.Fatalf("validate-config examples: %v\n%s", err, stdout.String())
	}
	if n := strings.Count(stdout.String(), ": ok ("); n != len(files) {
		t.Errorf("%d ok lines for %d files:\n%s", n, len(files), stdout.String())
	}
}

package loadtest

import (
	"os"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// TestGatewayConfig: the config the harness gives omnigate loads and
// validates, --rename gives the deployment a model name to rewrite, and
// --keyed a key whose hash is the bench key's, with limits.
func TestGatewayConfig(t *testing.T) {
	for _, rename := range []bool{false, true} {
		keyed := rename
		path, err := writeGatewayConfig("http://127.0.0.1:9/v1", rename, keyed)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(strings.TrimSuffix(path, "/omnigate.yaml"))
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ApplyDefaults() // as omnigate serve does
		if p := cfg.Validate(); len(p) > 0 {
			t.Fatalf("rename=%v: %v", rename, p)
		}
		if keyed && (len(cfg.Auth.Keys) != 1 || cfg.Auth.Keys[0].Hash != auth.Hash(benchKey) || !cfg.Auth.Keys[0].Limits.Any()) {
			t.Errorf("keyed: %+v", cfg.Auth.Keys)
		}
		if !keyed && len(cfg.Auth.Keys) != 0 {
			t.Errorf("not keyed, yet keys: %+v", cfg.Auth.Keys)
		}
		d := cfg.Models[0].Deployments[0]
		if renamed := d.UpstreamModel != "" && d.UpstreamModel != cfg.Models[0].Name; renamed != rename {
			t.Errorf("rename=%v: upstream model %q for public %q", rename, d.UpstreamModel, cfg.Models[0].Name)
		}
	}
	var b strings.Builder
	WriteTable(&b, &Result{Renamed: true, Runs: 1})
	if !strings.Contains(b.String(), "omnigate rewrites the model name") {
		t.Errorf("the report does not say the model name was rewritten:\n%s", b.String())
	}
}

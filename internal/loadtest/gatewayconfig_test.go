package loadtest

import (
	"os"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

// TestGatewayConfig: the config the harness gives omnigate loads and
// validates, and --rename gives the deployment a model name to rewrite.
func TestGatewayConfig(t *testing.T) {
	for _, rename := range []bool{false, true} {
		path, err := writeGatewayConfig("http://127.0.0.1:9/v1", rename)
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

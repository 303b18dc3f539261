package catalog

import (
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// TestNewKeepsPolicies: a model's retry and hedge policies reach its
// catalog entry.
func TestNewKeepsPolicies(t *testing.T) {
	cfg := config.Default()
	cfg.Models[0].Hedge = config.Hedge{After: config.Duration(300 * time.Millisecond), Percentile: 95}
	cfg.Models[0].Retry.Attempts = 5
	cat, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := cat.Lookup(cfg.Models[0].Name)
	if !ok {
		t.Fatal("model missing")
	}
	if m.Hedge != cfg.Models[0].Hedge || m.Retry.Attempts != 5 {
		t.Errorf("hedge %+v, retry %+v: the config's did not carry over", m.Hedge, m.Retry)
	}
}

package plan

import (
	"math"
	"testing"

	"github.com/omnigate/omnigate/internal/sim"
)

// ProfileTolerance is how far the planner's KV capacity may be from a
// simulator profile's kv_cache_tokens: the profiles state the planner's
// figure, rounded.
const ProfileTolerance = 0.02

// TestDefaultTiers plans the two default tiers on the hardware the
// simulator profiles assume (their comments: one H100 80GB for the 7B,
// four with TP=4 for the 30B; bf16; vllm-omni, so the talker is loaded) and
// compares KV capacity and max_model_len with the profiles.
func TestDefaultTiers(t *testing.T) {
	h100, _ := Catalog{}.Lookup("H100-80GB")
	tests := []struct {
		profile string
		model   string
		count   int
	}{
		{"qwen3-omni-7b", "qwen3-omni-7b", 1},
		{"qwen3-omni-30b", "qwen3-omni-30b", 4},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			prof, err := sim.LoadProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			m := mustModel(t, tt.model)
			p, err := Make(Request{Model: m, GPU: h100, Count: tt.count, TP: tt.count,
				DType: BF16, KVDType: KV16, Context: prof.MaxModelLen, Talker: true}, Catalog{})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Fits || p.TP != tt.count || p.MaxModelLen != prof.MaxModelLen {
				t.Fatalf("fits %v, TP %d, max_model_len %d; the profile has TP %d, max_model_len %d", p.Fits, p.TP, p.MaxModelLen, tt.count, prof.MaxModelLen)
			}
			if p.MaxModelLen > m.Text.MaxContext {
				t.Errorf("max_model_len %d exceeds the model's %d", p.MaxModelLen, m.Text.MaxContext)
			}
			e := (float64(p.KVCacheTokens) - float64(prof.KVCacheTokens)) / float64(prof.KVCacheTokens)
			t.Logf("%s: planner %d KV tokens, profile %d (%+.1f%%); max_model_len %d", tt.profile, p.KVCacheTokens, prof.KVCacheTokens, 100*e, p.MaxModelLen)
			if math.Abs(e) > ProfileTolerance {
				t.Errorf("KV cache %d tokens, the profile says %d: %+.1f%%, outside ±%.0f%%", p.KVCacheTokens, prof.KVCacheTokens, 100*e, 100*ProfileTolerance)
			}
		})
	}
}

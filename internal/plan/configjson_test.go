package plan

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parseFile(t *testing.T, name, id string) *Model {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseConfig(b, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParseOmniConfigs reads the config.json fields of the two Omni
// families (testdata holds the fields the planner reads, as the
// checkpoints have them) into the same shapes the catalog holds.
func TestParseOmniConfigs(t *testing.T) {
	for _, c := range []struct{ file, id string }{
		{"qwen3_omni_30b_a3b_instruct.config.json", "Qwen/Qwen3-Omni-30B-A3B-Instruct"},
		{"qwen2_5_omni_7b.config.json", "Qwen/Qwen2.5-Omni-7B"},
	} {
		t.Run(c.id, func(t *testing.T) {
			got := parseFile(t, c.file, c.id)
			want := mustModel(t, c.id)
			if diff := cmp.Diff(want.Text, got.Text); diff != "" {
				t.Errorf("text (-catalog +parsed):\n%s", diff)
			}
			if diff := cmp.Diff(want.Vision, got.Vision); diff != "" {
				t.Errorf("vision (-catalog +parsed):\n%s", diff)
			}
			if diff := cmp.Diff(want.Audio, got.Audio); diff != "" {
				t.Errorf("audio (-catalog +parsed):\n%s", diff)
			}
			if got.Talker == nil {
				t.Fatal("no talker")
			}
			if diff := cmp.Diff(want.Talker.LM, got.Talker.LM); diff != "" {
				t.Errorf("talker (-catalog +parsed):\n%s", diff)
			}
			if got.Talker.VocoderParams != want.Talker.VocoderParams || got.DType != "bfloat16" {
				t.Errorf("vocoder %d (want %d), dtype %q", got.Talker.VocoderParams, want.Talker.VocoderParams, got.DType)
			}
		})
	}
}

func TestParsePlainConfigs(t *testing.T) {
	moe := parseFile(t, "qwen3_30b_a3b.config.json", "Qwen/Qwen3-30B-A3B")
	want := Text{Layers: 48, Hidden: 2048, Heads: 32, KVHeads: 4, HeadDim: 128, Vocab: 151936, Intermediate: 6144,
		Experts: 128, ExpertsPerToken: 8, MoEIntermediate: 768, MaxContext: 40960}
	if diff := cmp.Diff(want, moe.Text); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if moe.Vision != nil || moe.Audio != nil || moe.Talker != nil || moe.HFClass != "Qwen3MoeForCausalLM" {
		t.Errorf("%+v", moe)
	}
	// Qwen3-30B-A3B is published as 30.5B parameters, 3.3B active.
	within(t, "Qwen3-30B-A3B", float64(moe.Params()), 30.5e9, 0.01)

	tests := []struct {
		name string
		json string
		want Text
	}{
		{"defaults: KV heads, head dim, context", `{"num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,"vocab_size":100,"intermediate_size":128}`,
			Text{Layers: 2, Hidden: 64, Heads: 4, KVHeads: 4, HeadDim: 16, Vocab: 100, Intermediate: 128, MaxContext: 32768}},
		{"tied, text_config nest", `{"text_config":{"num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"intermediate_size":128,"tie_word_embeddings":true,"max_position_embeddings":4096}}`,
			Text{Layers: 2, Hidden: 64, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 100, Intermediate: 128, TiedEmbeddings: true, MaxContext: 4096}},
		// Every second layer MoE, layer 1 kept dense: layers 3 and 5.
		{"sparse step and dense layers", `{"num_hidden_layers":6,"hidden_size":64,"num_attention_heads":4,"vocab_size":100,"intermediate_size":128,"num_experts":8,"num_experts_per_tok":2,"decoder_sparse_step":2,"mlp_only_layers":[1]}`,
			Text{Layers: 6, Hidden: 64, Heads: 4, KVHeads: 4, HeadDim: 16, Vocab: 100, Intermediate: 128, Experts: 8, ExpertsPerToken: 2, MoEIntermediate: 128, MoELayers: 2, MaxContext: 32768}},
	}
	for _, tt := range tests {
		m, err := ParseConfig([]byte(tt.json), "x")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, m.Text); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	for _, bad := range []string{`{`, `{"hidden_size": 64}`} {
		if _, err := ParseConfig([]byte(bad), "x"); err == nil || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

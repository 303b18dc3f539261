package plan

import (
	"math"
	"testing"
)

func within(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*math.Abs(want) {
		t.Errorf("%s = %.0f, want %.0f within %.2g%% (off by %+.3f%%)", name, got, want, 100*tol, 100*(got-want)/want)
	}
}

func mustModel(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParamCounts checks the shape formulas against published totals.
func TestParamCounts(t *testing.T) {
	tests := []struct {
		name string
		got  func() int64
		want float64
		tol  float64
		src  string
	}{
		// The checkpoint's weight table: 35,259,818,545 parameters in 15
		// safetensors files (thinker, talker, code2wav).
		{"Qwen3-Omni Instruct, every weight", mustModel(t, "Qwen/Qwen3-Omni-30B-A3B-Instruct").Params, 35259818545, 0.001, "checkpoint weight table"},
		// keras-hub's preset: the backbone, 30,532,122,624.
		{"Qwen3-Omni text backbone", func() int64 { return mustModel(t, "qwen3-omni-30b").Text.Params() }, 30532122624, 0.001, "keras-hub preset"},
		// The model card: 3.3B active.
		{"Qwen3-Omni active", func() int64 { return mustModel(t, "qwen3-omni-30b").Text.ActiveParams() }, 3.3e9, 0.03, "model card"},
		// Qwen2.5-7B's backbone is 7.62B (the Qwen2.5 report).
		{"Qwen2.5-Omni-7B text backbone", func() int64 { return mustModel(t, "qwen3-omni-7b").Text.Params() }, 7.62e9, 0.002, "Qwen2.5 report"},
		// Qwen2.5-VL's ViT is about 675M, Whisper-large-v3's encoder about 635M.
		{"Qwen2.5-Omni-7B vision", func() int64 { return mustModel(t, "qwen3-omni-7b").Vision.Params() }, 675e6, 0.01, "Qwen2.5-VL"},
		{"Qwen2.5-Omni-7B audio", func() int64 { return mustModel(t, "qwen3-omni-7b").Audio.Params() }, 635e6, 0.02, "Whisper-large-v3"},
		// The Hugging Face page lists 10.7B for the whole 7B checkpoint.
		{"Qwen2.5-Omni-7B, every weight", mustModel(t, "Qwen/Qwen2.5-Omni-7B").Params, 10.7e9, 0.01, "model page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			within(t, tt.name+" ("+tt.src+")", float64(tt.got()), tt.want, tt.tol)
		})
	}
}

func TestTextFormulas(t *testing.T) {
	dense := Text{Layers: 2, Hidden: 8, Heads: 2, KVHeads: 1, HeadDim: 4, Vocab: 10, Intermediate: 16}
	moe := Text{Layers: 2, Hidden: 8, Heads: 2, KVHeads: 1, HeadDim: 4, Vocab: 10,
		Experts: 4, ExpertsPerToken: 2, MoEIntermediate: 6, SharedExpert: 3, MoELayers: 1, Intermediate: 16}
	tied := dense
	tied.TiedEmbeddings = true
	wide := dense
	wide.EmbeddingWidth = 12
	tests := []struct {
		name string
		got  int64
		want int64
	}{
		// q: 8x8, k and v: 8x4 each, o: 8x8.
		{"attention", dense.attentionParams(), 64 + 32 + 32 + 64},
		{"dense mlp", dense.denseMLPParams(), 3 * 8 * 16},
		// 4 experts x 3 x 8 x 6, router 8 x 4, shared 3 x 8 x 3.
		{"moe layer", moe.moeParams(), 576 + 32 + 72},
		{"embedding and head", dense.EmbeddingParams(), 160},
		{"tied", tied.EmbeddingParams(), 80},
		{"wide embedding", wide.EmbeddingParams(), 120 + 80},
		{"dense total", dense.Params(), 2*(192+384) + 160},
		// One dense layer and one MoE layer.
		{"moe total", moe.Params(), 2*192 + 384 + 680 + 160},
		// Active: the MoE layer runs 2 experts and the shared one.
		{"moe active", moe.ActiveParams(), 2*192 + 384 + 3*8*(2*6+3) + 8*4 + 160},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestKVBytes(t *testing.T) {
	q3 := mustModel(t, "qwen3-omni-30b").Text
	q7 := mustModel(t, "qwen3-omni-7b").Text
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		// 2 x layers x KV heads x head dim x bytes.
		{"qwen3 bf16", q3.KVBytesPerToken(2), 2 * 48 * 4 * 128 * 2},
		{"qwen3 fp8", q3.KVBytesPerToken(1), 2 * 48 * 4 * 128},
		{"qwen2.5-7b bf16", q7.KVBytesPerToken(2), 57344},
		{"qwen3 tp4 per GPU", KVBytesPerTokenPerGPU(q3, Layout{TP: 4, PP: 1, KVDType: KV16}), 24576},
		// TP 8 over 4 KV heads: one replicated head per GPU.
		{"qwen3 tp8 per GPU", KVBytesPerTokenPerGPU(q3, Layout{TP: 8, PP: 1, KVDType: KV16}), 24576},
		{"qwen3 pp4 per GPU", KVBytesPerTokenPerGPU(q3, Layout{TP: 1, PP: 4, KVDType: KVFP8}), 2 * 12 * 4 * 128},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %g, want %g", tt.name, tt.got, tt.want)
		}
	}
	for _, c := range []struct{ tp, want int }{{1, 4}, {2, 2}, {4, 1}, {8, 1}} {
		if got := q3.KVHeadsPerGPU(c.tp); got != c.want {
			t.Errorf("KVHeadsPerGPU(%d) = %d, want %d", c.tp, got, c.want)
		}
	}
}

func TestEncoderAndVocoderFormulas(t *testing.T) {
	v := Vision{Depth: 1, Hidden: 4, Intermediate: 8, PatchSize: 2, TemporalPatch: 2, MergeSize: 2, OutHidden: 6}
	gated := v
	gated.GatedMLP = true
	tests := []struct {
		name      string
		got, want int64
	}{
		// patch 3x2x2x2x4, block 4x16 + 2x4x8, merger 16x16 + 16x6.
		{"vision", v.Params(), 96 + 64 + 64 + 256 + 96},
		{"gated vision", gated.Params(), 96 + 64 + 96 + 256 + 96},
		// Whisper stem: 3 x mel x d, 3 x d x d, d x out.
		{"audio whisper", Audio{Layers: 1, DModel: 4, FFN: 8, MelBins: 16, OutDim: 2}.Params(), (64 + 64) + 192 + 48 + 8},
		// Qwen3 stem: 9c, 18c^2, c x mel/8 x d, d^2, d x out.
		{"audio aut", Audio{Layers: 1, DModel: 4, FFN: 8, MelBins: 16, OutDim: 2, DownsampleHidden: 3}.Params(), 128 + 27 + 162 + 24 + 16 + 8},
		{"dit", DiTParams(2, 4, 2), 2 * (96 + 64 + 64)},
		// conv_pre 2x8x7; one stage to 4 channels: 8x4x(2x2) + 6x16x(3+5).
		{"bigvgan", BigVGANParams(2, 8, []int{2}, []int{3, 5}), 112 + 128 + 768},
		// layers 1x(4x16+3x4x8), codebook 2x3x4, one upsampling 10x16,
		// decoder 4x8x7, one stage 8x4x(2x2) + 3x8x16.
		{"code2wav", Code2WavParams(1, 4, 8, 2, 3, 8, []int{2}, []int{2}), 160 + 24 + 160 + 224 + 128 + 384},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

package plan

import (
	"testing"
)

// tiny is a model small enough to work its memory out by hand.
func tiny() *Model {
	return &Model{ID: "tiny",
		Text:              Text{Layers: 2, Hidden: 8, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: 10, Intermediate: 16, MaxContext: 100},
		Vision:            &Vision{Depth: 1, Hidden: 4, Intermediate: 8, PatchSize: 2, TemporalPatch: 2, MergeSize: 2, OutHidden: 8},
		Audio:             &Audio{Layers: 1, DModel: 4, FFN: 8, MelBins: 16, OutDim: 8, TokensPerSecond: 25, FramesPerSecond: 50},
		Talker:            &Talker{LM: Text{Layers: 1, Hidden: 4, Heads: 1, KVHeads: 1, HeadDim: 4, Vocab: 6, Intermediate: 8}, VocoderParams: 100},
		PromptLogitsBytes: 6,
	}
}

func TestWeightBytesPerGPU(t *testing.T) {
	m := tiny()
	layers, emb, enc, talk := m.Text.LayerParams(), m.Text.EmbeddingParams(), m.EncoderParams(), m.TalkerParams()
	tests := []struct {
		name string
		l    Layout
		want int64
	}{
		{"bf16", Layout{TP: 1, PP: 1, DType: BF16}, 2*layers + 2*emb + 2*enc},
		// The backbone splits over every GPU; encoders stay whole.
		{"bf16 tp2", Layout{TP: 2, PP: 1, DType: BF16}, (2*layers+2*emb)/2 + 2*enc},
		{"fp8 pp2", Layout{TP: 1, PP: 2, DType: FP8}, (layers+2*emb)/2 + 2*enc},
		{"talker tp2", Layout{TP: 2, PP: 1, DType: BF16, Talker: true}, (2*layers+2*emb)/2 + 2*enc + talk},
	}
	for _, tt := range tests {
		if got := WeightBytesPerGPU(m, tt.l); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	// 4-bit: half a byte per weight plus 2.5 bytes per 128-weight group.
	awq := WeightBytesPerGPU(m, Layout{TP: 1, PP: 1, DType: AWQ})
	if want := int64(float64(layers)*(0.5+2.5/128)) + 2*emb + 2*enc; awq != want {
		t.Errorf("awq: %d, want %d", awq, want)
	}
}

func TestActivationBytes(t *testing.T) {
	m := tiny()
	moe := Text{Layers: 1, Hidden: 8, Heads: 2, KVHeads: 1, HeadDim: 4, Vocab: 10, Experts: 16, ExpertsPerToken: 2, MoEIntermediate: 6}
	tests := []struct {
		name      string
		got, want float64
	}{
		// 2 B x (4 hidden copies + 3 MLP-wide tensors split over TP).
		{"dense", TokenActivationBytes(m.Text, 1), 2 * (4*8 + 3*16)},
		{"dense tp2", TokenActivationBytes(m.Text, 2), 2 * (4*8 + 3*16/2)},
		// Fused MoE: 3 tensors of the routed experts' width, plus a
		// hidden-wide row per routed expert.
		{"moe", TokenActivationBytes(moe, 1), 2 * (4*8 + 3*12 + 2*8)},
		// transformers' MoE: hidden copies, fp32 router logits, int64 mask.
		{"looped moe", LoopedTokenActivationBytes(moe), 2*4*8 + 4*16 + 8*16*2},
		{"looped dense", LoopedTokenActivationBytes(m.Text), 2 * (4*8 + 3*16)},
		// Vision: 2 B x (4 hidden + 2 MLP matrices); pixels: 3 x 2 x 2 x 2.
		{"patch", m.Vision.PatchActivationBytes(), 2 * (4*4 + 2*8)},
		{"patch pixels", m.Vision.PatchPixelBytes(), 2 * 24},
		{"audio frame", m.Audio.FrameActivationBytes(), 2 * (4*4 + 2*8)},
		// KV (2x2x2x4x2) + activations + 6 B x vocab, then the talker's.
		{"prompt token", TransformersPromptTokenBytes(m, false), 64 + 160 + 60},
		{"prompt token with talker", TransformersPromptTokenBytes(m, true), 64 + 160 + 60 + (16 + 2*(16+24) + 36)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %g, want %g", tt.name, tt.got, tt.want)
		}
	}
}

func TestServingActivationBytes(t *testing.T) {
	m := tiny()
	l := Layout{TP: 1, PP: 1}
	llm := float64(MaxBatchedTokens) * TokenActivationBytes(m.Text, 1)
	sampler := 10.0 * 10 * 4 * SamplerCopies
	// At least a MaxBatchedTokens step's worth of vision tokens.
	enc := func(tokens int) float64 { return float64(tokens*4) * m.Vision.PatchActivationBytes() }
	cache := func(tokens int) float64 { return float64(tokens) * 8 * 2 }
	tests := []struct {
		name   string
		vision int
		want   float64
	}{
		{"no media", 0, max(llm, enc(MaxBatchedTokens)) + cache(MaxBatchedTokens) + sampler},
		{"a long video", 100000, max(llm, enc(100000)) + cache(100000) + sampler},
	}
	for _, tt := range tests {
		if got := ServingActivationBytes(m, l, tt.vision, 10); got != int64(tt.want) {
			t.Errorf("%s: %d, want %d", tt.name, got, int64(tt.want))
		}
	}
	text := &Model{Text: m.Text}
	if got, want := ServingActivationBytes(text, l, 0, 10), int64(llm+sampler); got != want {
		t.Errorf("text model: %d, want %d", got, want)
	}
}

func TestTransformersPeak(t *testing.T) {
	m := tiny()
	tok := Tokens{Text: 10, Video: 20, VideoAudio: 5, VisionPatches: 80, AudioFrames: 10}
	b := TransformersPeak(m, tok, true)
	wantAct := 35*TransformersPromptTokenBytes(m, true) + 80*(m.Vision.PatchActivationBytes()+m.Vision.PatchPixelBytes()) + 10*m.Audio.FrameActivationBytes()
	want := Breakdown{Weights: 2 * m.Params(), Activations: int64(wantAct), Overhead: FrameworkOverhead + SpeechOverhead}
	if b != want {
		t.Errorf("with talker: %+v, want %+v", b, want)
	}
	b = TransformersPeak(m, tok, false)
	if b.Weights != 2*m.ThinkerParams() || b.Overhead != FrameworkOverhead {
		t.Errorf("without talker: %+v", b)
	}
}

package plan

import (
	"fmt"
	"slices"
	"strings"
)

// Model is one model as the planner sees it: its parts and their shapes.
type Model struct {
	// ID is the Hugging Face id ("Qwen/Qwen3-Omni-30B-A3B-Instruct").
	ID string `json:"id"`
	// Names are the other names it is found by: the gateway's public tier
	// names.
	Names  []string `json:"names,omitempty"`
	Text   Text     `json:"text"`
	Vision *Vision  `json:"vision,omitempty"`
	Audio  *Audio   `json:"audio,omitempty"`
	// Talker is nil for models that answer in text only (Thinking,
	// Captioner, plain LLMs).
	Talker *Talker `json:"talker,omitempty"`
	// DType is the checkpoint's torch_dtype.
	DType string `json:"torch_dtype"`
	// HFClass is the transformers class that loads the whole model.
	HFClass string `json:"hf_class"`
	// PromptLogitsBytes is what the transformers implementation the
	// official memory table measured holds per vocabulary entry for every
	// prompt position: 6 is the LM head's bf16 logits plus an fp32 copy, 2
	// the bf16 logits alone, 0 the last position only. Inferred from each
	// table's growth per second of video (docs/planning.md); a newer
	// transformers may keep only the last position.
	PromptLogitsBytes float64 `json:"prompt_logits_bytes"`
	// Checkpoints are quantized checkpoints the publisher ships.
	Checkpoints map[DType]string `json:"checkpoints,omitempty"`
}

// ShortName is the id without its organisation.
func (m *Model) ShortName() string {
	if i := strings.LastIndexByte(m.ID, '/'); i >= 0 {
		return m.ID[i+1:]
	}
	return m.ID
}

// EncoderParams is the vision and audio encoders together.
func (m *Model) EncoderParams() int64 {
	var n int64
	if m.Vision != nil {
		n += m.Vision.Params()
	}
	if m.Audio != nil {
		n += m.Audio.Params()
	}
	return n
}

// ThinkerParams is what vLLM and SGLang load: the text backbone and the
// encoders.
func (m *Model) ThinkerParams() int64 { return m.Text.Params() + m.EncoderParams() }

// TalkerParams is the talker and its vocoder (0 without a talker).
func (m *Model) TalkerParams() int64 {
	if m.Talker == nil {
		return 0
	}
	return m.Talker.Params()
}

// Params is every weight of the checkpoint.
func (m *Model) Params() int64 { return m.ThinkerParams() + m.TalkerParams() }

// Where the built-in figures come from. Qwen publishes them in each
// checkpoint's config.json; the copies read for this catalog:
//
//   - Qwen2.5-Omni: huggingface/transformers
//     src/transformers/models/qwen2_5_omni/configuration_qwen2_5_omni.py,
//     whose defaults are Qwen/Qwen2.5-Omni-7B's (text: 28 layers, hidden
//     3584, 28 heads, 4 KV heads, intermediate 18944, vocab 152064, 32768
//     positions; vision: depth 32, width 1280, intermediate 3420, silu,
//     patch 14, merge 2, temporal patch 2; audio: 32 layers, d_model 1280,
//     ffn 5120, 128 mel bins; talker: intermediate 18944, vocab 8448,
//     embedding 3584, head dim 128; token2wav: DiT depth 22, dim 1024,
//     ff_mult 2; BigVGAN 1536 channels, rates 5,3,2,2,2,2, kernels 3,7,11).
//     The 3B's text backbone (36 layers, hidden 2048, 16 heads, 2 KV heads,
//     intermediate 11008, vocab 151936) is in cpehle/tyr
//     Tyr/Model/Qwen25Omni/Config.lean ("from HF config.json"). The talker's
//     896 width, 24 layers, 12 heads and 4 KV heads are from copies of the
//     7B's config.json in public test code.
//   - Qwen3-Omni-30B-A3B: keras-team/keras-hub
//     keras_hub/src/models/qwen3_omni/qwen3_omni_presets.py (48 layers, 32
//     query and 4 KV heads, 128 experts with 8 active, 30,532,122,624
//     backbone parameters) and huggingface/transformers
//     src/transformers/models/qwen3_omni_moe/configuration_qwen3_omni_moe.py
//     (vision: depth 27, width 1152, intermediate 4304, patch 16, merge 2,
//     3 deepstack mergers, 2304 positions; audio: 32 layers, d_model 1280,
//     ffn 5120, a 480-channel stem; talker: 20 layers, width 1024, 16 heads,
//     2 KV heads, 128 experts of 384; code predictor: 5 layers of 1024 with
//     16 heads, 8 KV heads, intermediate 3072), with the checkpoint's own
//     values where the class defaults differ: hidden 2048, vocab 152064,
//     out dims 2048, 65536 positions, 6 active talker experts plus a
//     768-wide shared one, 16 code groups; code2wav: 8 layers of 1024,
//     intermediate 3072, codebook 2048 x 16, decoder 1536, upsampling 2,2
//     and rates 8,5,4,3.
var catalog = []*Model{
	qwen25Omni7B(),
	qwen25Omni3B(),
	qwen3Omni("Qwen/Qwen3-Omni-30B-A3B-Instruct", true, "qwen3-omni-30b"),
	qwen3Omni("Qwen/Qwen3-Omni-30B-A3B-Thinking", false),
	qwen3Omni("Qwen/Qwen3-Omni-30B-A3B-Captioner", false),
}

func qwen25Vision(out int) *Vision {
	return &Vision{Depth: 32, Hidden: 1280, Intermediate: 3420, GatedMLP: true,
		PatchSize: 14, TemporalPatch: 2, MergeSize: 2, OutHidden: out}
}

// qwen25Audio is Whisper-large-v3's encoder: 100 mel frames a second, a
// stride-2 convolution and a 2x pooling make 25 tokens a second.
func qwen25Audio(out int) *Audio {
	return &Audio{Layers: 32, DModel: 1280, FFN: 5120, MelBins: 128, OutDim: out,
		TokensPerSecond: 25, FramesPerSecond: 50}
}

// qwen25Token2Wav is the DiT that turns codec tokens into a mel
// spectrogram and the BigVGAN that turns it into a waveform.
func qwen25Token2Wav() int64 {
	return DiTParams(22, 1024, 2) + BigVGANParams(80, 1536, []int{5, 3, 2, 2, 2, 2}, []int{3, 7, 11})
}

func qwen25Omni7B() *Model {
	return &Model{
		ID:    "Qwen/Qwen2.5-Omni-7B",
		Names: []string{"qwen3-omni-7b"},
		Text: Text{Layers: 28, Hidden: 3584, Heads: 28, KVHeads: 4, HeadDim: 128, Vocab: 152064,
			Intermediate: 18944, MaxContext: 32768},
		Vision: qwen25Vision(3584),
		Audio:  qwen25Audio(3584),
		Talker: &Talker{
			LM: Text{Layers: 24, Hidden: 896, Heads: 12, KVHeads: 4, HeadDim: 128, Vocab: 8448,
				Intermediate: 18944, EmbeddingWidth: 3584, MaxContext: 32768},
			ExtraParams:   3584 * 896, // thinker_to_talker_proj
			VocoderParams: qwen25Token2Wav(),
		},
		DType:             "bfloat16",
		HFClass:           "Qwen2_5OmniForConditionalGeneration",
		PromptLogitsBytes: 2,
		Checkpoints: map[DType]string{
			AWQ:  "Qwen/Qwen2.5-Omni-7B-AWQ",
			GPTQ: "Qwen/Qwen2.5-Omni-7B-GPTQ-Int4",
		},
	}
}

func qwen25Omni3B() *Model {
	return &Model{
		ID: "Qwen/Qwen2.5-Omni-3B",
		Text: Text{Layers: 36, Hidden: 2048, Heads: 16, KVHeads: 2, HeadDim: 128, Vocab: 151936,
			Intermediate: 11008, MaxContext: 32768},
		Vision: qwen25Vision(2048),
		Audio:  qwen25Audio(2048),
		Talker: &Talker{
			// The 3B talker's 4864-wide MLP is not in any config copy found;
			// it is the Qwen2.5-0.5B shape its 896 width implies.
			LM: Text{Layers: 24, Hidden: 896, Heads: 12, KVHeads: 4, HeadDim: 128, Vocab: 8448,
				Intermediate: 4864, EmbeddingWidth: 2048, MaxContext: 32768},
			ExtraParams:   2048 * 896,
			VocoderParams: qwen25Token2Wav(),
		},
		DType:             "bfloat16",
		HFClass:           "Qwen2_5OmniForConditionalGeneration",
		PromptLogitsBytes: 0,
	}
}

func qwen3Omni(id string, talker bool, names ...string) *Model {
	m := &Model{
		ID:    id,
		Names: names,
		Text: Text{Layers: 48, Hidden: 2048, Heads: 32, KVHeads: 4, HeadDim: 128, Vocab: 152064,
			Intermediate: 768, Experts: 128, ExpertsPerToken: 8, MoEIntermediate: 768, MaxContext: 65536},
		Vision: &Vision{Depth: 27, Hidden: 1152, Intermediate: 4304, PatchSize: 16, TemporalPatch: 2,
			MergeSize: 2, OutHidden: 2048, ExtraMergers: 3, PositionEmbeddings: 2304},
		// AuT: 100 mel frames a second; three stride-2 convolutions over
		// 100-frame windows make 13 tokens per second of audio.
		Audio: &Audio{Layers: 32, DModel: 1280, FFN: 5120, MelBins: 128, OutDim: 2048,
			DownsampleHidden: 480, TokensPerSecond: 13, FramesPerSecond: 13},
		DType:             "bfloat16",
		HFClass:           "Qwen3OmniMoeForConditionalGeneration",
		PromptLogitsBytes: 6,
	}
	if talker {
		predictor := Text{Layers: 5, Hidden: 1024, Heads: 16, KVHeads: 8, HeadDim: 128, Intermediate: 3072}
		const codeGroups = 16
		m.Talker = &Talker{
			LM: Text{Layers: 20, Hidden: 1024, Heads: 16, KVHeads: 2, HeadDim: 128, Vocab: 3072,
				Intermediate: 2048, Experts: 128, ExpertsPerToken: 6, MoEIntermediate: 384,
				SharedExpert: 768, MaxContext: 65536},
			// The code predictor's layers, an embedding and a head of 2048
			// codes per group after the first, and the two 2048 -> 1024
			// projections from the thinker.
			ExtraParams:   predictor.LayerParams() + (codeGroups-1)*2*2048*1024 + 2*(2048*2048+2048*1024),
			VocoderParams: Code2WavParams(8, 1024, 3072, 2048, codeGroups, 1536, []int{2, 2}, []int{8, 5, 4, 3}),
		}
	}
	return m
}

// Lookup finds a built-in model by its Hugging Face id, its id without
// the organisation, or a gateway tier name, ignoring case.
func Lookup(name string) (*Model, error) {
	for _, m := range catalog {
		if strings.EqualFold(name, m.ID) || strings.EqualFold(name, m.ShortName()) ||
			slices.ContainsFunc(m.Names, func(n string) bool { return strings.EqualFold(n, name) }) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("unknown model %q (built in: %s; or give --config-json)", name, strings.Join(ModelNames(), ", "))
}

// ModelNames lists the built-in models' ids and tier names.
func ModelNames() []string {
	var n []string
	for _, m := range catalog {
		n = append(n, m.ID)
		n = append(n, m.Names...)
	}
	return n
}

package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// hfText is the decoder fields of a Hugging Face config.json.
type hfText struct {
	Layers          int      `json:"num_hidden_layers"`
	Hidden          int      `json:"hidden_size"`
	Heads           int      `json:"num_attention_heads"`
	KVHeads         int      `json:"num_key_value_heads"`
	HeadDim         int      `json:"head_dim"`
	Vocab           int      `json:"vocab_size"`
	Intermediate    int      `json:"intermediate_size"`
	Experts         int      `json:"num_experts"`
	LocalExperts    int      `json:"num_local_experts"`
	RoutedExperts   int      `json:"n_routed_experts"`
	ExpertsPerToken int      `json:"num_experts_per_tok"`
	MoEIntermediate int      `json:"moe_intermediate_size"`
	SharedExpert    int      `json:"shared_expert_intermediate_size"`
	SparseStep      int      `json:"decoder_sparse_step"`
	MLPOnlyLayers   []int    `json:"mlp_only_layers"`
	EmbeddingSize   int      `json:"embedding_size"`
	Tied            *bool    `json:"tie_word_embeddings"`
	MaxPositions    int      `json:"max_position_embeddings"`
	TorchDType      string   `json:"torch_dtype"`
	DType           string   `json:"dtype"`
	Architectures   []string `json:"architectures"`
}

func (c hfText) text() (Text, error) {
	t := Text{
		Layers: c.Layers, Hidden: c.Hidden, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		Vocab: c.Vocab, Intermediate: c.Intermediate, ExpertsPerToken: c.ExpertsPerToken,
		MoEIntermediate: c.MoEIntermediate, SharedExpert: c.SharedExpert, EmbeddingWidth: c.EmbeddingSize,
		MaxContext: c.MaxPositions,
	}
	if t.Layers <= 0 || t.Hidden <= 0 || t.Heads <= 0 || t.Vocab <= 0 {
		return t, fmt.Errorf("num_hidden_layers, hidden_size, num_attention_heads and vocab_size must all be set")
	}
	if t.KVHeads == 0 {
		t.KVHeads = t.Heads
	}
	if t.HeadDim == 0 {
		t.HeadDim = t.Hidden / t.Heads
	}
	if t.MaxContext == 0 {
		t.MaxContext = 32768
	}
	if t.EmbeddingWidth == t.Hidden {
		t.EmbeddingWidth = 0
	}
	t.Experts = max(c.Experts, c.LocalExperts, c.RoutedExperts)
	if t.Experts > 0 {
		if t.MoEIntermediate == 0 {
			t.MoEIntermediate = t.Intermediate
		}
		step := max(1, c.SparseStep)
		for i := range t.Layers {
			if !slices.Contains(c.MLPOnlyLayers, i) && (i+1)%step == 0 {
				t.MoELayers++
			}
		}
		if t.MoELayers == t.Layers {
			t.MoELayers = 0
		}
	}
	t.TiedEmbeddings = c.Tied != nil && *c.Tied
	return t, nil
}

// hfVision is a Qwen-style vision_config.
type hfVision struct {
	Depth         int    `json:"depth"`
	EmbedDim      int    `json:"embed_dim"`
	Hidden        int    `json:"hidden_size"`
	Intermediate  int    `json:"intermediate_size"`
	Act           string `json:"hidden_act"`
	PatchSize     int    `json:"patch_size"`
	TemporalPatch int    `json:"temporal_patch_size"`
	MergeSize     int    `json:"spatial_merge_size"`
	OutHidden     int    `json:"out_hidden_size"`
	Deepstack     []int  `json:"deepstack_visual_indexes"`
	Positions     int    `json:"num_position_embeddings"`
}

func (c hfVision) vision() *Vision {
	v := &Vision{Depth: c.Depth, Hidden: c.Hidden, Intermediate: c.Intermediate, GatedMLP: c.Act == "silu",
		PatchSize: c.PatchSize, TemporalPatch: c.TemporalPatch, MergeSize: c.MergeSize, OutHidden: c.OutHidden,
		ExtraMergers: len(c.Deepstack), PositionEmbeddings: c.Positions}
	if c.EmbedDim > 0 {
		v.Hidden = c.EmbedDim // Qwen2.5's width; its hidden_size may be the output's
	}
	if v.Depth == 0 || v.Hidden == 0 || v.PatchSize == 0 {
		return nil
	}
	v.TemporalPatch = max(1, v.TemporalPatch)
	v.MergeSize = max(1, v.MergeSize)
	return v
}

// hfAudio is a Whisper-style audio_config.
type hfAudio struct {
	Layers     int `json:"encoder_layers"`
	DModel     int `json:"d_model"`
	FFN        int `json:"encoder_ffn_dim"`
	MelBins    int `json:"num_mel_bins"`
	OutDim     int `json:"output_dim"`
	Downsample int `json:"downsample_hidden_size"`
	NWindow    int `json:"n_window"`
}

func (c hfAudio) audio() *Audio {
	if c.Layers == 0 || c.DModel == 0 {
		return nil
	}
	a := &Audio{Layers: c.Layers, DModel: c.DModel, FFN: c.FFN, MelBins: c.MelBins, OutDim: c.OutDim,
		DownsampleHidden: c.Downsample, TokensPerSecond: 25, FramesPerSecond: 50}
	if c.Downsample > 0 {
		// Qwen3's AuT: a window of 2 x n_window mel frames (100 a second)
		// goes through three stride-2 convolutions.
		w := max(1, 2*c.NWindow)
		perWindow := math.Ceil(math.Ceil(math.Ceil(float64(w)/2)/2) / 2)
		a.TokensPerSecond = perWindow * 100 / float64(w)
		a.FramesPerSecond = a.TokensPerSecond
	}
	return a
}

// hfConfig is the parts of a config.json the planner reads: a plain
// decoder at the top, or an Omni thinker/talker nest.
type hfConfig struct {
	hfText
	TextConfig    *hfText   `json:"text_config"`
	VisionConfig  *hfVision `json:"vision_config"`
	AudioConfig   *hfAudio  `json:"audio_config"`
	ThinkerConfig *struct {
		TextConfig   *hfText   `json:"text_config"`
		VisionConfig *hfVision `json:"vision_config"`
		AudioConfig  *hfAudio  `json:"audio_config"`
	} `json:"thinker_config"`
	TalkerConfig *struct {
		hfText
		TextConfig *hfText `json:"text_config"`
	} `json:"talker_config"`
	Token2WavConfig *json.RawMessage `json:"token2wav_config"`
	Code2WavConfig  *json.RawMessage `json:"code2wav_config"`
}

// ParseConfig reads a Hugging Face config.json into a Model named id: the
// decoder-only shape (num_hidden_layers, hidden_size, heads, KV heads,
// head_dim, vocab_size, intermediate_size, experts, torch_dtype), a
// text_config beside vision_config and audio_config, or the Omni models'
// thinker_config (text_config, vision_config, audio_config) and
// talker_config. Talkers are counted by their language model; a vocoder
// beside one is taken to be Qwen's (token2wav or code2wav).
func ParseConfig(data []byte, id string) (*Model, error) {
	var c hfConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	text, vision, audio := c.hfText, c.VisionConfig, c.AudioConfig
	if c.TextConfig != nil {
		text = *c.TextConfig
	}
	if th := c.ThinkerConfig; th != nil && th.TextConfig != nil {
		text = *th.TextConfig
		if th.VisionConfig != nil {
			vision = th.VisionConfig
		}
		if th.AudioConfig != nil {
			audio = th.AudioConfig
		}
	}
	t, err := text.text()
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	// A parsed model's transformers implementation is unknown: plan with
	// bf16 logits kept for every prompt position, between the built-ins'.
	m := &Model{ID: id, Text: t, DType: firstNonEmpty(text.TorchDType, text.DType, c.TorchDType, c.DType, "bfloat16"),
		HFClass: "AutoModelForCausalLM", PromptLogitsBytes: 2}
	if len(c.Architectures) > 0 {
		m.HFClass = c.Architectures[0]
	}
	if vision != nil {
		m.Vision = vision.vision()
	}
	if audio != nil {
		m.Audio = audio.audio()
	}
	if tc := c.TalkerConfig; tc != nil {
		lm := tc.hfText
		if tc.TextConfig != nil {
			lm = *tc.TextConfig
		}
		if lt, err := lm.text(); err == nil {
			m.Talker = &Talker{LM: lt}
			switch {
			case c.Code2WavConfig != nil:
				m.Talker.VocoderParams = Code2WavParams(8, 1024, 3072, 2048, 16, 1536, []int{2, 2}, []int{8, 5, 4, 3})
			case c.Token2WavConfig != nil:
				m.Talker.VocoderParams = qwen25Token2Wav()
			}
		}
	}
	return m, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

package plan

// Parameter counts here come from the shapes in a model's config: the
// matrices of every layer. Biases and norm weights are left out; they are
// under 0.1% of any model in the catalog.

// Text is a decoder-only transformer: the thinker's text backbone, a
// talker's language model, or a plain LLM.
type Text struct {
	Layers       int `json:"num_hidden_layers"`
	Hidden       int `json:"hidden_size"`
	Heads        int `json:"num_attention_heads"`
	KVHeads      int `json:"num_key_value_heads"`
	HeadDim      int `json:"head_dim"`
	Vocab        int `json:"vocab_size"`
	Intermediate int `json:"intermediate_size"` // dense MLP width
	// Experts, ExpertsPerToken and MoEIntermediate describe a mixture of
	// experts; Experts 0 means every layer is dense.
	Experts         int `json:"num_experts,omitempty"`
	ExpertsPerToken int `json:"num_experts_per_tok,omitempty"`
	MoEIntermediate int `json:"moe_intermediate_size,omitempty"`
	// SharedExpert is the width of an expert every token passes through.
	SharedExpert int `json:"shared_expert_intermediate_size,omitempty"`
	// MoELayers is how many layers are MoE when Experts > 0 (0: all of them).
	MoELayers int `json:"moe_layers,omitempty"`
	// EmbeddingWidth is the input embedding's width when it differs from
	// Hidden (Qwen2.5-Omni's talker embeds at the thinker's width).
	EmbeddingWidth int  `json:"embedding_size,omitempty"`
	TiedEmbeddings bool `json:"tie_word_embeddings,omitempty"`
	MaxContext     int  `json:"max_position_embeddings"`
}

// moeLayers is the number of MoE layers; the rest are dense.
func (t Text) moeLayers() int {
	if t.Experts == 0 {
		return 0
	}
	if t.MoELayers > 0 && t.MoELayers < t.Layers {
		return t.MoELayers
	}
	return t.Layers
}

// attentionParams is one layer's q, k, v and o projections.
func (t Text) attentionParams() int64 {
	q := int64(t.Hidden) * int64(t.Heads*t.HeadDim)
	kv := 2 * int64(t.Hidden) * int64(t.KVHeads*t.HeadDim)
	return 2*q + kv
}

// denseMLPParams is one gated MLP layer: gate, up and down.
func (t Text) denseMLPParams() int64 {
	return 3 * int64(t.Hidden) * int64(t.Intermediate)
}

// moeParams is one MoE layer: every expert, the router and a shared
// expert.
func (t Text) moeParams() int64 {
	h := int64(t.Hidden)
	return int64(t.Experts)*3*h*int64(t.MoEIntermediate) + h*int64(t.Experts) + 3*h*int64(t.SharedExpert)
}

// EmbeddingParams is the input embedding plus the output head (one matrix
// when tied).
func (t Text) EmbeddingParams() int64 {
	in := int64(t.Vocab) * int64(t.embeddingWidth())
	if t.TiedEmbeddings {
		return in
	}
	return in + int64(t.Vocab)*int64(t.Hidden)
}

func (t Text) embeddingWidth() int {
	if t.EmbeddingWidth > 0 {
		return t.EmbeddingWidth
	}
	return t.Hidden
}

// LayerParams is every transformer layer's weights: what quantization
// applies to (the embedding and head stay in 16 bits).
func (t Text) LayerParams() int64 {
	moe := int64(t.moeLayers())
	dense := int64(t.Layers) - moe
	return int64(t.Layers)*t.attentionParams() + dense*t.denseMLPParams() + moe*t.moeParams()
}

// Params is the backbone's total parameter count.
func (t Text) Params() int64 { return t.LayerParams() + t.EmbeddingParams() }

// activeIntermediate is the MLP width one token passes through in an MoE
// layer (its experts plus the shared one), or the dense width.
func (t Text) activeIntermediate() int {
	if t.Experts == 0 {
		return t.Intermediate
	}
	return t.ExpertsPerToken*t.MoEIntermediate + t.SharedExpert
}

// ActiveParams is what one token computes with: attention, the experts it
// is routed to, and the embedding and head.
func (t Text) ActiveParams() int64 {
	moe := int64(t.moeLayers())
	dense := int64(t.Layers) - moe
	h := int64(t.Hidden)
	active := 3*h*int64(t.ExpertsPerToken*t.MoEIntermediate+t.SharedExpert) + h*int64(t.Experts)
	return int64(t.Layers)*t.attentionParams() + dense*t.denseMLPParams() + moe*active + t.EmbeddingParams()
}

// KVBytesPerToken is the KV cache one token takes across all layers:
// 2 (K and V) x layers x KV heads x head dim x bytes per element.
func (t Text) KVBytesPerToken(elemBytes float64) float64 {
	return 2 * float64(t.Layers) * float64(t.KVHeads) * float64(t.HeadDim) * elemBytes
}

// KVHeadsPerGPU is how many KV heads one GPU holds under tensor
// parallelism tp: a share of them, or one replicated head when tp exceeds
// their number (vLLM replicates then).
func (t Text) KVHeadsPerGPU(tp int) int {
	if tp <= t.KVHeads {
		return t.KVHeads / tp
	}
	return 1
}

// Vision is a ViT-style encoder that cuts frames into patches and merges
// merge x merge patches into one token.
type Vision struct {
	Depth        int `json:"depth"`
	Hidden       int `json:"hidden_size"`
	Intermediate int `json:"intermediate_size"`
	// GatedMLP is a SwiGLU MLP (gate, up, down: Qwen2.5's silu) rather
	// than two matrices (Qwen3's gelu).
	GatedMLP      bool `json:"gated_mlp"`
	PatchSize     int  `json:"patch_size"`
	TemporalPatch int  `json:"temporal_patch_size"`
	MergeSize     int  `json:"spatial_merge_size"`
	OutHidden     int  `json:"out_hidden_size"`
	// ExtraMergers is the deepstack mergers beside the final one.
	ExtraMergers int `json:"deepstack_mergers,omitempty"`
	// PositionEmbeddings is a learned position table's rows (0: rotary only).
	PositionEmbeddings int `json:"num_position_embeddings,omitempty"`
}

func (v Vision) mlpMatrices() int64 {
	if v.GatedMLP {
		return 3
	}
	return 2
}

// Params is the encoder's parameter count: patch embedding, blocks,
// mergers and position table.
func (v Vision) Params() int64 {
	h := int64(v.Hidden)
	patch := 3 * int64(v.TemporalPatch) * int64(v.PatchSize*v.PatchSize) * h
	block := 4*h*h + v.mlpMatrices()*h*int64(v.Intermediate)
	m := h * int64(v.MergeSize*v.MergeSize)
	merger := m*m + m*int64(v.OutHidden)
	return patch + int64(v.Depth)*block + int64(1+v.ExtraMergers)*merger + int64(v.PositionEmbeddings)*h
}

// TokenPixels is the side of the square of pixels one token covers.
func (v Vision) TokenPixels() int { return v.PatchSize * v.MergeSize }

// PatchActivationBytes is the working set of one patch inside an encoder
// block: hidden-state copies and the MLP's intermediate tensors, 16-bit.
func (v Vision) PatchActivationBytes() float64 {
	return 2 * float64(ActivationHiddenCopies*v.Hidden+int(v.mlpMatrices())*v.Intermediate)
}

// PatchPixelBytes is one patch's pixels as the encoder's 16-bit input:
// 3 channels x temporal patch x patch x patch.
func (v Vision) PatchPixelBytes() float64 {
	return 2 * 3 * float64(v.TemporalPatch*v.PatchSize*v.PatchSize)
}

// Audio is a Whisper-style encoder over a log-mel spectrogram.
type Audio struct {
	Layers  int `json:"encoder_layers"`
	DModel  int `json:"d_model"`
	FFN     int `json:"encoder_ffn_dim"`
	MelBins int `json:"num_mel_bins"`
	OutDim  int `json:"output_dim"`
	// DownsampleHidden is the channel count of Qwen3's three-convolution
	// stem (0: Whisper's two 1-D convolutions).
	DownsampleHidden int `json:"downsample_hidden_size,omitempty"`
	// TokensPerSecond is what one second of audio becomes in the prompt.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// FramesPerSecond is the encoder's sequence rate after its stem.
	FramesPerSecond float64 `json:"frames_per_second"`
}

// Params is the encoder's parameter count: stem, layers and projection.
func (a Audio) Params() int64 {
	d := int64(a.DModel)
	layers := int64(a.Layers) * (4*d*d + 2*d*int64(a.FFN))
	var stem int64
	if c := int64(a.DownsampleHidden); c > 0 {
		// Three 3x3 stride-2 convolutions, then a linear over c channels x
		// mel/8 bins, then two projections.
		stem = 9*c + 2*9*c*c + c*int64(a.MelBins/8)*d + d*d + d*int64(a.OutDim)
	} else {
		stem = 3*int64(a.MelBins)*d + 3*d*d + d*int64(a.OutDim)
	}
	return layers + stem
}

// FrameActivationBytes is one encoder frame's working set in a layer.
func (a Audio) FrameActivationBytes() float64 {
	return 2 * float64(ActivationHiddenCopies*a.DModel+2*a.FFN)
}

// Talker is the speech side of an Omni model: a language model over codec
// tokens and the vocoder that turns codes into a waveform.
type Talker struct {
	LM Text `json:"text_config"`
	// ExtraParams is the rest of the talker: Qwen3's code predictor and
	// projections, Qwen2.5's projection from the thinker.
	ExtraParams int64 `json:"extra_params"`
	// VocoderParams is code2wav (Qwen3) or token2wav (Qwen2.5).
	VocoderParams int64 `json:"vocoder_params"`
}

// Params is the talker and vocoder together.
func (t Talker) Params() int64 { return t.LM.Params() + t.ExtraParams + t.VocoderParams }

// DiTParams is a diffusion transformer's blocks (Qwen2.5-Omni's token2wav):
// adaptive-norm modulation (6 d^2), attention (4 d^2) and an ff_mult-wide
// MLP per block.
func DiTParams(depth, dim, ffMult int) int64 {
	d := int64(dim)
	return int64(depth) * (6*d*d + 4*d*d + 2*int64(ffMult)*d*d)
}

// BigVGANParams is a BigVGAN vocoder: the input convolution, one
// transposed convolution per upsampling stage (kernel about 2 x rate) and
// one residual block per kernel size per stage (six convolutions each).
func BigVGANParams(melBins, channels int, rates, kernels []int) int64 {
	c := int64(channels)
	n := int64(melBins) * c * 7
	var ksum int64
	for _, k := range kernels {
		ksum += int64(k)
	}
	for _, r := range rates {
		next := c / 2
		n += c * next * int64(2*r)
		n += 6 * next * next * ksum
		c = next
	}
	return n
}

// Code2WavParams is Qwen3-Omni's code2wav: a transformer over codec
// embeddings, ConvNeXt upsampling and a causal convolutional decoder.
func Code2WavParams(layers, hidden, intermediate, codebook, quantizers, decoderDim int, upsampling, rates []int) int64 {
	h := int64(hidden)
	n := int64(layers)*(4*h*h+3*h*int64(intermediate)) + int64(codebook*quantizers)*h
	n += int64(len(upsampling)) * (2*h*h + 8*h*h)
	c := int64(decoderDim)
	n += h * c * 7
	for _, r := range rates {
		next := c / 2
		n += c * next * int64(2*r) // transposed convolution, kernel 2 x rate
		n += 3 * 8 * next * next   // three residual units: 7-tap and 1-tap convolutions
		c = next
	}
	return n
}

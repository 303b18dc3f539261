package plan

// The memory model's constants. Everything else follows from a model's
// shapes, the request and the GPU; docs/planning.md explains each term.
const (
	// ActivationHiddenCopies is how many hidden-state-sized tensors one
	// layer holds at its peak: the residual, the normed input, the
	// attention output and the MLP output.
	ActivationHiddenCopies = 4
	// GatedMLPTensors is the MLP-wide tensors at a gated MLP's peak: gate,
	// up and their product.
	GatedMLPTensors = 3
	// FrameworkOverhead is what one transformers process holds beyond
	// weights and activations: the CUDA context, cuBLAS and
	// flash-attention workspaces and the caching allocator's slack.
	FrameworkOverhead = 1 << 30
	// SpeechOverhead is what answering in speech adds in transformers: the
	// talker's codec steps and the vocoder turning the whole answer into a
	// mel spectrogram and a waveform at once. Fitted, with
	// FrameworkOverhead, to the official tables (Qwen3-Omni's README says
	// dropping the talker saves about 10 GB, weights included).
	SpeechOverhead = 2560 << 20
	// ServingOverhead is what a vLLM or SGLang worker holds per GPU beyond
	// weights, activations and KV cache: the CUDA context, NCCL buffers and
	// the CUDA graphs captured for decode batches.
	ServingOverhead = 2 << 30
	// MaxBatchedTokens is the tokens one engine step processes (vLLM's
	// max_num_batched_tokens for the API server, SGLang's chunked prefill):
	// the engine reserves activations for a step this large.
	MaxBatchedTokens = 8192
	// MaxNumSeqsCap is vLLM's default --max-num-seqs, the most the planner
	// suggests.
	MaxNumSeqsCap = 256
	// SamplerCopies is the fp32 vocabulary-wide tensors per running
	// sequence when the sampler runs: logits and probabilities.
	SamplerCopies = 2
)

// Breakdown is one GPU's memory, in bytes.
type Breakdown struct {
	// Budget is what the engine may use: --gpu-memory-utilization times
	// the GPU's memory (transformers: all of it).
	Budget      int64 `json:"budget_bytes"`
	Weights     int64 `json:"weights_bytes"`
	Activations int64 `json:"activations_bytes"`
	Overhead    int64 `json:"overhead_bytes"`
	// KVCache is what is left for the KV cache (negative: it does not fit).
	KVCache int64 `json:"kv_cache_bytes"`
}

// Layout is how a model is spread over GPUs and stored.
type Layout struct {
	TP, PP  int
	DType   DType
	KVDType KVDType
	// Talker loads the talker and vocoder too (vllm-omni, SGLang-Omni).
	Talker bool
}

func (l Layout) gpus() int { return l.TP * l.PP }

// WeightBytesPerGPU is one GPU's share of the weights: the backbone's
// layers in dtype and its embedding and head in 16 bits, split over every
// GPU; the encoders in 16 bits on every GPU (they are small, and not every
// engine shards them); the talker in 16 bits split over the tensor
// parallel group.
func WeightBytesPerGPU(m *Model, l Layout) int64 {
	w := float64(m.Text.LayerParams())*l.DType.BytesPerParam() + 2*float64(m.Text.EmbeddingParams())
	w /= float64(l.gpus())
	w += 2 * float64(m.EncoderParams())
	if l.Talker && m.Talker != nil {
		w += 2 * float64(m.TalkerParams()) / float64(l.TP)
	}
	return int64(w)
}

// TokenActivationBytes is one token's working set in a backbone layer
// under tensor parallelism tp: hidden-state copies (not split) and the
// MLP's intermediate tensors (split); an MoE layer also gathers one
// hidden-wide row per routed expert.
func TokenActivationBytes(t Text, tp int) float64 {
	b := float64(ActivationHiddenCopies*t.Hidden) + float64(GatedMLPTensors*t.activeIntermediate())/float64(tp)
	if t.Experts > 0 {
		b += float64(t.ExpertsPerToken * t.Hidden)
	}
	return 2 * b
}

// ServingActivationBytes is what an engine reserves per GPU for its
// largest step: a MaxBatchedTokens prefill through a backbone layer, or
// the vision encoder over the largest media item (whichever is larger;
// they run one after the other), the encoder's output cache, and the
// sampler's fp32 logits for maxSeqs sequences.
func ServingActivationBytes(m *Model, l Layout, visionTokens, maxSeqs int) int64 {
	llm := MaxBatchedTokens * TokenActivationBytes(m.Text, l.TP)
	var enc, cache float64
	if v := m.Vision; v != nil {
		tokens := max(visionTokens, MaxBatchedTokens)
		enc = float64(tokens*v.MergeSize*v.MergeSize) * v.PatchActivationBytes()
		cache = float64(tokens) * float64(m.Text.Hidden) * 2
	}
	sampler := float64(maxSeqs) * float64(m.Text.Vocab) * 4 * SamplerCopies
	return int64(max(llm, enc) + cache + sampler)
}

// KVBytesPerTokenPerGPU is one token's KV cache on one GPU: its layers
// (split by pipeline stages) times its KV heads (split by tensor
// parallelism, at least one).
func KVBytesPerTokenPerGPU(t Text, l Layout) float64 {
	layers := float64(t.Layers) / float64(l.PP)
	return 2 * layers * float64(t.KVHeadsPerGPU(l.TP)*t.HeadDim) * l.KVDType.Bytes()
}

// LoopedTokenActivationBytes is TokenActivationBytes for transformers'
// MoE, which runs one expert at a time over the tokens routed to it: per
// token the layer holds the hidden-state copies, the router's fp32 logits
// and its one-hot expert mask (int64, experts x routed experts); dense
// layers are as TokenActivationBytes.
func LoopedTokenActivationBytes(t Text) float64 {
	if t.Experts == 0 {
		return TokenActivationBytes(t, 1)
	}
	return 2*float64(ActivationHiddenCopies*t.Hidden) + 4*float64(t.Experts) + 8*float64(t.Experts*t.ExpertsPerToken)
}

// TransformersPromptTokenBytes is what one prompt token costs a
// transformers generate call: the thinker's KV cache and activations,
// the prompt logits the implementation keeps, and the same for the talker,
// which runs over the whole prompt too.
func TransformersPromptTokenBytes(m *Model, talker bool) float64 {
	b := m.Text.KVBytesPerToken(2) + LoopedTokenActivationBytes(m.Text) + m.PromptLogitsBytes*float64(m.Text.Vocab)
	if talker && m.Talker != nil {
		t := m.Talker.LM
		b += t.KVBytesPerToken(2) + LoopedTokenActivationBytes(t) + m.PromptLogitsBytes*float64(t.Vocab)
	}
	return b
}

// TransformersPeak is the peak memory of one transformers generate call
// over a prompt (the setting of Qwen's minimum-memory tables): every
// weight in 16 bits, FrameworkOverhead, the prompt's per-token cost, and
// the encoders' activations over every patch and audio frame (the
// processor hands them all the media at once).
func TransformersPeak(m *Model, tokens Tokens, talker bool) Breakdown {
	params := m.ThinkerParams()
	if talker {
		params += m.TalkerParams()
	}
	act := float64(tokens.Total()) * TransformersPromptTokenBytes(m, talker)
	if v := m.Vision; v != nil {
		act += float64(tokens.VisionPatches) * (v.PatchActivationBytes() + v.PatchPixelBytes())
	}
	if a := m.Audio; a != nil {
		act += float64(tokens.AudioFrames) * a.FrameActivationBytes()
	}
	over := int64(FrameworkOverhead)
	if talker && m.Talker != nil {
		over += SpeechOverhead
	}
	return Breakdown{Weights: 2 * params, Activations: int64(act), Overhead: over}
}

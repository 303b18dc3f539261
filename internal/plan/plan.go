// Package plan answers what fits where: given a model, a GPU and how many,
// it works out the memory per GPU (weights, activations, overhead, KV
// cache), the smallest tensor-parallel size that fits, the longest context
// and how many sequences run at once, and writes the engine command (vLLM,
// SGLang, or the transformers setup the Qwen memory tables were measured
// with). docs/planning.md explains the memory model.
package plan

import (
	"errors"
	"fmt"
	"math"

	"github.com/omnigate/omnigate/internal/hardware"
)

// Engine is what serves the model.
type Engine string

// Engines.
const (
	VLLM         Engine = "vllm"
	SGLang       Engine = "sglang"
	Transformers Engine = "transformers"
)

// ParseEngine reads an --engine value.
func ParseEngine(s string) (Engine, error) {
	switch e := Engine(s); e {
	case "":
		return VLLM, nil
	case VLLM, SGLang, Transformers:
		return e, nil
	}
	return "", fmt.Errorf("unknown engine %q (vllm, sglang or transformers)", s)
}

// DefaultGPUMemoryUtilization is vLLM's --gpu-memory-utilization default.
const DefaultGPUMemoryUtilization = 0.9

// Request is what to plan.
type Request struct {
	Model *Model
	GPU   GPUSpec
	Count int // GPUs available (default 1)
	// Interconnect is how they connect ("" = GPU.Link).
	Interconnect hardware.Interconnect
	Engine       Engine
	DType        DType
	KVDType      KVDType
	Media        Media
	// Context is the max_model_len wanted (0: as long as fits, up to the
	// model's own).
	Context int
	// GPUMemoryUtilization is the share of each GPU the engine may use
	// (default 0.9).
	GPUMemoryUtilization float64
	// TP forces the tensor-parallel size (0: the smallest that fits).
	TP int
	// Talker loads the talker and vocoder too, as vllm-omni and
	// SGLang-Omni do to answer in speech (transformers always loads them).
	Talker bool
}

// Plan is the answer.
type Plan struct {
	Model        string                `json:"model"`
	Engine       Engine                `json:"engine"`
	GPU          GPUSpec               `json:"gpu"`
	Count        int                   `json:"count"`
	Interconnect hardware.Interconnect `json:"interconnect,omitempty"`
	Utilization  float64               `json:"gpu_memory_utilization"`
	Fits         bool                  `json:"fits"`
	TP           int                   `json:"tensor_parallel_size"`
	PP           int                   `json:"pipeline_parallel_size"`
	DType        DType                 `json:"dtype"`
	KVDType      KVDType               `json:"kv_cache_dtype"`
	Talker       bool                  `json:"talker_loaded"`
	// Checkpoint is what the command serves: the model, or its quantized
	// checkpoint.
	Checkpoint string `json:"checkpoint"`
	Tokens     Tokens `json:"request_tokens"`
	// Params is what the engine loads, by part.
	Params          Params    `json:"params"`
	PerGPU          Breakdown `json:"per_gpu"`
	KVBytesPerToken float64   `json:"kv_bytes_per_token_per_gpu"`
	KVCacheTokens   int64     `json:"kv_cache_tokens"`
	MaxModelLen     int       `json:"max_model_len"`
	// MaxConcurrency is how many sequences of MaxModelLen the KV cache
	// holds at once.
	MaxConcurrency float64 `json:"max_concurrency"`
	MaxNumSeqs     int     `json:"max_num_seqs"`
	// MinGPUMemoryBytes is the least memory per GPU this layout fits the
	// request in; MinGPUMemoryGB is it in units of 2^30 bytes, as PyTorch
	// and the Qwen tables count GB.
	MinGPUMemoryBytes int64    `json:"min_gpu_memory_bytes"`
	MinGPUMemoryGB    float64  `json:"min_gpu_memory_gb"`
	Options           []Option `json:"options,omitempty"`
	Why               []string `json:"why"`
	Advice            []string `json:"advice,omitempty"`
	// Command is the engine command ("" when the plan does not fit).
	Command string `json:"command"`
	// PipelineCommand is the pipeline-parallel alternative when tensor
	// parallelism would cross PCIe.
	PipelineCommand string `json:"pipeline_command,omitempty"`
}

// Params is the loaded parameters by part.
type Params struct {
	Text     int64 `json:"text"`
	Active   int64 `json:"text_active"`
	Encoders int64 `json:"encoders"`
	Talker   int64 `json:"talker"`
}

// Option is one tensor-parallel size tried, in the plan's formats.
type Option struct {
	TP             int     `json:"tensor_parallel_size"`
	Fits           bool    `json:"fits"`
	WeightsPerGPU  int64   `json:"weights_per_gpu_bytes"`
	KVCacheTokens  int64   `json:"kv_cache_tokens"`
	MaxModelLen    int     `json:"max_model_len"`
	MaxConcurrency float64 `json:"max_concurrency"`
	Note           string  `json:"note,omitempty"`
}

// ErrRequest marks a request the planner cannot take as asked.
var ErrRequest = errors.New("plan")

func requestErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRequest, fmt.Sprintf(format, args...))
}

// Make plans req; hw says what the GPU supports.
func Make(req Request, hw Hardware) (*Plan, error) {
	m := req.Model
	if m == nil {
		return nil, requestErr("no model")
	}
	if req.GPU.MemoryBytes <= 0 {
		return nil, requestErr("no GPU")
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 0 {
		return nil, requestErr("--count %d: want at least 1", req.Count)
	}
	if req.Engine == "" {
		req.Engine = VLLM
	}
	if req.DType == "" {
		req.DType = DTypeAuto
	}
	if req.KVDType == "" {
		req.KVDType = KVAuto
	}
	if req.GPUMemoryUtilization == 0 {
		req.GPUMemoryUtilization = DefaultGPUMemoryUtilization
	}
	if u := req.GPUMemoryUtilization; u <= 0 || u > 1 {
		return nil, requestErr("--gpu-memory-utilization %g: want a share in (0, 1]", u)
	}
	if req.Interconnect == hardware.None {
		req.Interconnect = req.GPU.Link
	}
	if req.Count == 1 {
		req.Interconnect = hardware.None
	}
	if req.Context < 0 || req.Context > m.Text.MaxContext {
		return nil, requestErr("--context %d: %s takes at most %d tokens", req.Context, m.ShortName(), m.Text.MaxContext)
	}
	tokens := PromptTokens(m, req.Media)
	// Serving engines cap a sequence at max_model_len tokens; transformers
	// does not, and the Omni models' positions advance with time (TMRoPE),
	// not per token, so a long video outgrows max_position_embeddings in
	// tokens without running out of positions.
	if req.Engine != Transformers && tokens.Total() > m.Text.MaxContext {
		return nil, requestErr("the request is %d tokens; %s takes at most %d", tokens.Total(), m.ShortName(), m.Text.MaxContext)
	}
	if req.Context > 0 && tokens.Total() > req.Context {
		return nil, requestErr("the request is %d tokens, more than --context %d", tokens.Total(), req.Context)
	}
	sup := hw.Supports(req.GPU)
	p := &Plan{
		Model: m.ID, Engine: req.Engine, GPU: req.GPU, Count: req.Count,
		Interconnect: req.Interconnect, Utilization: req.GPUMemoryUtilization, Tokens: tokens,
	}
	if req.Engine == Transformers {
		return planTransformers(p, req, sup)
	}
	return planServing(p, req, sup)
}

// format is how weights and KV cache are stored.
type format struct {
	weights DType
	kv      KVDType
}

// formats are the formats to try, best first: what was asked, else 16
// bits, then fp8 KV, fp8 weights and 4-bit where the generation has them.
// Each note says why a format is not what was asked.
func formats(req Request, sup hardware.Supports) (fs []format, notes []string) {
	gen := genName(req.GPU.Generation)
	sixteen := BF16
	if !sup.BF16 {
		sixteen = FP16
	}
	var weights []DType
	switch d := req.DType; {
	case d == DTypeAuto:
		weights = []DType{sixteen}
		if sup.FP8 {
			weights = append(weights, FP8)
		}
		if sup.Int4 {
			weights = append(weights, AWQ)
		}
	case d == BF16 && !sup.BF16:
		notes = append(notes, fmt.Sprintf("bf16 weights: %s has no bf16; planned in fp16", gen))
		weights = []DType{FP16}
	case (d == FP8 || d == Int8) && !sup.FP8:
		notes = append(notes, fmt.Sprintf("%s weights: %s has no fp8 or int8 tensor-core kernels the engines use for it; planned in %s", d, gen, sixteen))
		weights = []DType{sixteen}
	case d.Int4() && !sup.Int4 && !plainInt4(req.GPU.Generation, d):
		notes = append(notes, fmt.Sprintf("%s weights: no 4-bit kernels for %s; planned in %s", d, gen, sixteen))
		weights = []DType{sixteen}
	default:
		weights = []DType{d}
	}
	var kvs []KVDType
	switch req.KVDType {
	case KVFP8:
		if sup.FP8KV {
			kvs = []KVDType{KVFP8}
		} else {
			notes = append(notes, fmt.Sprintf("fp8 KV cache: %s has no fp8; planned in 16 bits", gen))
			kvs = []KVDType{KV16}
		}
	case KV16:
		kvs = []KVDType{KV16}
	default:
		kvs = []KVDType{KV16}
		if sup.FP8KV {
			kvs = append(kvs, KVFP8)
		}
	}
	for _, w := range weights {
		for _, k := range kvs {
			fs = append(fs, format{w, k})
		}
	}
	return fs, notes
}

func genName(g hardware.Generation) string {
	if g == hardware.Unknown {
		return "this GPU"
	}
	return string(g)
}

// TPConstraint says why tensor-parallel size tp cannot serve t in d, or "".
// vLLM splits attention heads evenly, so tp divides them; KV heads split
// evenly too, or are replicated when tp is a multiple of them; a 4-bit
// checkpoint's row-parallel matrices split on whole 128-weight groups.
func TPConstraint(t Text, d DType, tp int) string {
	if t.Heads%tp != 0 {
		return fmt.Sprintf("%d attention heads do not split %d ways", t.Heads, tp)
	}
	if t.KVHeads%tp != 0 && tp%t.KVHeads != 0 {
		return fmt.Sprintf("%d KV heads neither split %d ways nor replicate evenly", t.KVHeads, tp)
	}
	if d.Int4() {
		width := t.Intermediate
		if t.Experts > 0 {
			width = t.MoEIntermediate
		}
		if width%tp != 0 || (width/tp)%Int4GroupSize != 0 {
			return fmt.Sprintf("%d MLP rows over %d GPUs is not whole %d-weight groups", width, tp, Int4GroupSize)
		}
	}
	return ""
}

// servingFit is one layout's numbers.
type servingFit struct {
	l        Layout
	b        Breakdown
	perToken float64
	kvTokens int64
	maxLen   int
	fits     bool
	note     string
	// fraction is the memory share the engine is told to use (SGLang's
	// may be below the one asked).
	fraction float64
}

// need is the sequence length a plan must hold: the asked context, else
// the request.
func need(req Request, tokens Tokens) int {
	return max(req.Context, tokens.Total())
}

func evalServing(req Request, tokens Tokens, l Layout) servingFit {
	m := req.Model
	mem := float64(req.GPU.MemoryBytes)
	f := servingFit{l: l, perToken: KVBytesPerTokenPerGPU(m.Text, l), fraction: req.GPUMemoryUtilization}
	f.b.Weights = WeightBytesPerGPU(m, l)
	f.b.Activations = ServingActivationBytes(m, l, tokens.Video+tokens.Image, MaxNumSeqsCap)
	f.b.Overhead = ServingOverhead
	if req.Engine == SGLang {
		// --mem-fraction-static holds weights and the KV pool; activations
		// and CUDA graphs live in the rest, so the fraction drops until the
		// rest holds them.
		dyn := float64(f.b.Activations + f.b.Overhead)
		f.fraction = min(f.fraction, math.Floor((1-dyn/mem)*100)/100)
		f.b.Budget = int64(f.fraction * mem)
		f.b.KVCache = f.b.Budget - f.b.Weights
	} else {
		f.b.Budget = int64(f.fraction * mem)
		f.b.KVCache = f.b.Budget - f.b.Weights - f.b.Activations - f.b.Overhead
	}
	n := need(req, tokens)
	if f.b.KVCache <= 0 {
		f.note = "no room left for the KV cache"
		if f.b.Weights > f.b.Budget {
			f.note = "the weights alone do not fit"
		}
		f.maxLen = max(req.Context, n)
		return f
	}
	f.kvTokens = int64(float64(f.b.KVCache) / f.perToken)
	switch {
	case req.Context > 0:
		f.maxLen = req.Context
	case f.kvTokens >= int64(m.Text.MaxContext):
		f.maxLen = m.Text.MaxContext
	default:
		f.maxLen = max(n, int(f.kvTokens/1024*1024))
	}
	f.fits = f.kvTokens >= int64(f.maxLen)
	if !f.fits {
		f.note = fmt.Sprintf("KV cache holds %d tokens, less than %d", f.kvTokens, f.maxLen)
	}
	return f
}

// minMemory is the least GPU memory f's layout fits a sequence of n in.
func minMemory(req Request, f servingFit, n int) int64 {
	kv := float64(n) * f.perToken
	if req.Engine == SGLang {
		// Weights and KV under the fraction asked, and the rest outside it.
		u := req.GPUMemoryUtilization
		return int64(max((float64(f.b.Weights)+kv)/u, float64(f.b.Weights+f.b.Activations+f.b.Overhead)+kv))
	}
	return int64((float64(f.b.Weights+f.b.Activations+f.b.Overhead) + kv) / req.GPUMemoryUtilization)
}

// tpSizes is the tensor-parallel sizes to try: powers of two up to limit
// that t can be split into in d; excluded ones come back with a reason.
func tpSizes(t Text, d DType, limit int) (ok []int, out map[int]string) {
	out = map[int]string{}
	for tp := 1; tp <= limit; tp *= 2 {
		if why := TPConstraint(t, d, tp); why != "" {
			out[tp] = why
			continue
		}
		ok = append(ok, tp)
	}
	return ok, out
}

func planServing(p *Plan, req Request, sup hardware.Supports) (*Plan, error) {
	m := req.Model
	if req.TP < 0 || (req.TP > 0 && req.TP&(req.TP-1) != 0) {
		return nil, requestErr("--tp %d: want a power of two", req.TP)
	}
	if req.TP > req.Count {
		return nil, requestErr("--tp %d needs %d GPUs; --count is %d", req.TP, req.TP, req.Count)
	}
	fmts, notes := formats(req, sup)
	talker := req.Talker && m.Talker != nil
	n := need(req, p.Tokens)
	// The first format that fits at some size wins, at its smallest size;
	// if none does, the last (smallest) format at its largest size says
	// how far off it is.
	var chosen *servingFit
	var options []Option
	var excluded map[int]string
	for _, fm := range fmts {
		d, kv := fm.weights, fm.kv
		sizes, out := tpSizes(m.Text, d, req.Count)
		if req.TP > 0 {
			if why, bad := out[req.TP]; bad {
				return nil, requestErr("--tp %d: %s", req.TP, why)
			}
			sizes = []int{req.TP}
		}
		if len(sizes) == 0 {
			continue
		}
		var opts []Option
		var fits *servingFit
		var f servingFit
		for _, tp := range sizes {
			f = evalServing(req, p.Tokens, Layout{TP: tp, PP: 1, DType: d, KVDType: kv, Talker: talker})
			opts = append(opts, Option{TP: tp, Fits: f.fits, WeightsPerGPU: f.b.Weights, KVCacheTokens: f.kvTokens,
				MaxModelLen: f.maxLen, MaxConcurrency: concurrency(f.kvTokens, f.maxLen), Note: f.note})
			if f.fits && fits == nil {
				fits = &servingFit{}
				*fits = f
			}
		}
		if fits == nil {
			fits = &f
		}
		chosen, options, excluded = fits, opts, out
		if fits.fits {
			break
		}
	}
	if chosen == nil {
		return nil, requestErr("%s cannot be split over %d GPUs", m.ShortName(), req.Count)
	}
	f := *chosen
	p.Fits = f.fits
	p.TP, p.PP = f.l.TP, 1
	p.DType, p.KVDType = f.l.DType, f.l.KVDType
	if p.KVDType == KV16 && p.DType == FP16 {
		p.KVDType = "fp16"
	}
	p.Talker = talker
	p.Params = Params{Text: m.Text.Params(), Active: m.Text.ActiveParams(), Encoders: m.EncoderParams()}
	if talker {
		p.Params.Talker = m.TalkerParams()
	}
	p.PerGPU = f.b
	p.KVBytesPerToken = f.perToken
	p.KVCacheTokens = f.kvTokens
	p.MaxModelLen = f.maxLen
	p.MaxConcurrency = concurrency(f.kvTokens, f.maxLen)
	p.MaxNumSeqs = int(min(max(f.kvTokens/int64(p.Tokens.Total()), 1), MaxNumSeqsCap))
	p.MinGPUMemoryBytes = minMemory(req, f, n)
	p.MinGPUMemoryGB = gib(p.MinGPUMemoryBytes)
	p.Options = options
	p.Checkpoint = checkpoint(m, p.DType)
	p.Utilization = f.fraction
	p.Why = append(notes, servingWhy(p, req, sup, excluded)...)
	if p.Fits {
		p.Command = command(p, req, sup, p.TP, 1)
	}
	if p.Fits && p.TP > 1 && req.Interconnect == hardware.PCIe {
		if pf := evalServing(req, p.Tokens, Layout{TP: 1, PP: p.TP, DType: p.DType, KVDType: p.KVDType, Talker: talker}); pf.fits {
			pp := *p
			pp.MaxModelLen, pp.MaxNumSeqs = pf.maxLen, int(min(max(pf.kvTokens/int64(p.Tokens.Total()), 1), MaxNumSeqsCap))
			p.PipelineCommand = command(&pp, req, sup, 1, p.TP)
		}
	}
	p.Advice = servingAdvice(p, req)
	return p, nil
}

func concurrency(kvTokens int64, maxLen int) float64 {
	if maxLen <= 0 || kvTokens <= 0 {
		return 0
	}
	return math.Floor(float64(kvTokens)/float64(maxLen)*100) / 100
}

func checkpoint(m *Model, d DType) string {
	if id, ok := m.Checkpoints[d]; ok {
		return id
	}
	if d.Int4() {
		return m.ID + "-" + map[DType]string{AWQ: "AWQ", GPTQ: "GPTQ-Int4"}[d]
	}
	return m.ID
}

func planTransformers(p *Plan, req Request, sup hardware.Supports) (*Plan, error) {
	m := req.Model
	d := req.DType
	switch {
	case d == DTypeAuto || d == BF16 || d == FP16:
	default:
		return nil, requestErr("--engine transformers plans 16-bit weights (the setting of Qwen's tables), not %s", d)
	}
	var notes []string
	if d != FP16 && !sup.BF16 {
		if d == BF16 {
			notes = append(notes, fmt.Sprintf("bf16 weights: %s has no bf16; planned in fp16", genName(req.GPU.Generation)))
		}
		d = FP16
	} else if d == DTypeAuto {
		d = BF16
	}
	if req.KVDType == KVFP8 {
		notes = append(notes, "fp8 KV cache: transformers' cache stays in the model's dtype; planned in 16 bits")
	}
	talker := m.Talker != nil
	b := TransformersPeak(m, p.Tokens, talker)
	peak := b.Weights + b.Activations + b.Overhead
	mem := req.GPU.MemoryBytes
	total := mem * int64(req.Count)
	b.Budget = total
	b.KVCache = total - peak
	gpus := int((peak + mem - 1) / mem)
	perToken := TransformersPromptTokenBytes(m, talker)
	fit := total - (peak - int64(float64(p.Tokens.Total())*perToken))
	maxTokens := int64(float64(fit) / perToken)
	p.Fits = peak <= total
	p.TP, p.PP = 1, max(1, min(gpus, req.Count))
	p.DType, p.KVDType, p.Talker = d, KVDType(d), talker // the cache is in the weights' 16-bit type
	p.Checkpoint = m.ID
	p.Params = Params{Text: m.Text.Params(), Active: m.Text.ActiveParams(), Encoders: m.EncoderParams(), Talker: m.TalkerParams()}
	p.PerGPU = b
	p.KVBytesPerToken = m.Text.KVBytesPerToken(2)
	p.KVCacheTokens = max(0, maxTokens)
	p.MaxModelLen = int(max(0, maxTokens)) // no position limit here (TMRoPE)
	p.MaxConcurrency = 1
	p.MaxNumSeqs = 1
	p.MinGPUMemoryBytes = peak
	p.MinGPUMemoryGB = gib(peak)
	p.Why = append(notes, transformersWhy(p, req, sup, gpus)...)
	if !p.Fits {
		p.Advice = append(p.Advice, fmt.Sprintf("needs %s in all: %d× %s (device_map=\"auto\" splits the layers over them)", GiB(peak), gpus, req.GPU.Name))
	}
	if p.Fits {
		p.Command = transformersCommand(m, d, p.PP, sup)
	}
	return p, nil
}

func gib(b int64) float64 { return math.Round(float64(b)/(1<<30)*100) / 100 }

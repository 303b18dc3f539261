package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/hardware"
)

// servingWhy says why the plan looks as it does: formats, split, kernels.
func servingWhy(p *Plan, req Request, sup hardware.Supports, excluded map[int]string) []string {
	m := req.Model
	gen := genName(req.GPU.Generation)
	var why []string
	layers16 := 2 * float64(m.Text.LayerParams()) / float64(p.TP)
	switch d := p.DType; {
	case d == BF16:
		why = append(why, fmt.Sprintf("bf16 weights: the checkpoint's own dtype; %s runs bf16", gen))
	case d == FP16:
		if req.DType == DTypeAuto {
			why = append(why, fmt.Sprintf("fp16 weights: %s has no bf16", gen))
		}
	case d == FP8:
		why = append(why, fmt.Sprintf("fp8 weights: %s has fp8 tensor cores; the backbone's layers drop from %s to %s per GPU (the engine quantizes the bf16 checkpoint as it loads)%s",
			gen, GiB(int64(layers16)), GiB(int64(layers16/2)), autoNote(req.DType)))
	case d == Int8:
		why = append(why, fmt.Sprintf("int8 weights: 1 byte per weight; needs a W8A8 int8 checkpoint of %s", m.ShortName()))
	case d.Int4():
		kernel := "the plain " + string(d) + " kernels (no Marlin before Ampere: slower)"
		if sup.Int4 {
			kernel = "the " + sup.Int4Kernel + " kernels (" + quantization(d, sup, VLLM) + ")"
		}
		why = append(why, fmt.Sprintf("%s weights: 4 bits with a 16-bit scale and a 4-bit zero per %d weights (%.2f B each); encoders, embedding and head stay 16-bit; %s runs them with %s%s",
			d, Int4GroupSize, d.BytesPerParam(), gen, kernel, autoNote(req.DType)))
		if _, ok := m.Checkpoints[d]; !ok {
			why = append(why, fmt.Sprintf("%s checkpoint: none published for %s; the command names it %s (quantize one, or use a community checkpoint)", d, m.ShortName(), p.Checkpoint))
		}
	}
	kv16 := KVBytesPerTokenPerGPU(m.Text, Layout{TP: p.TP, PP: 1, KVDType: KV16})
	heads := m.Text.KVHeadsPerGPU(p.TP)
	if p.KVDType == KVFP8 {
		why = append(why, fmt.Sprintf("fp8 KV cache: %s supports it; halves KV memory (%s → %s B per token per GPU)%s",
			gen, commas(int64(kv16)), commas(int64(kv16/2)), autoKVNote(req.KVDType)))
	} else {
		why = append(why, fmt.Sprintf("%s KV cache: 2 × %d layers × %d KV head(s) × %d × 2 B = %s B per token per GPU",
			p.KVDType, m.Text.Layers, heads, m.Text.HeadDim, commas(int64(kv16))))
	}
	if req.TP > 0 {
		why = append(why, fmt.Sprintf("tensor parallel %d: as asked (--tp)", p.TP))
	} else if p.Fits {
		why = append(why, fmt.Sprintf("tensor parallel %d: the smallest power of two that fits and splits the %d attention and %d KV heads", p.TP, m.Text.Heads, m.Text.KVHeads))
	}
	if p.TP > m.Text.KVHeads {
		why = append(why, fmt.Sprintf("KV heads replicate: each of %d GPUs holds 1 of the %d, %d copies of each", p.TP, m.Text.KVHeads, p.TP/m.Text.KVHeads))
	}
	var sizes []int
	for tp := range excluded {
		sizes = append(sizes, tp)
	}
	slices.Sort(sizes)
	for _, tp := range sizes {
		why = append(why, fmt.Sprintf("tensor parallel %d is out: %s", tp, excluded[tp]))
	}
	if req.Engine == SGLang && p.Utilization < req.GPUMemoryUtilization {
		why = append(why, fmt.Sprintf("--mem-fraction-static %g, not %g: it holds the weights and KV pool, and the %s of activations and CUDA graphs need the rest",
			p.Utilization, req.GPUMemoryUtilization, GiB(p.PerGPU.Activations+p.PerGPU.Overhead)))
	}
	if att := sup.Attention; req.Engine == VLLM && att != "" {
		if p.KVDType == KVFP8 && att == "flash-attn-2" {
			att = "flashinfer on " + gen + " (an fp8 KV cache moves it off flash-attn-2)"
		} else {
			att += " on " + gen
		}
		why = append(why, "attention: vLLM picks "+att)
	}
	if m.Talker != nil {
		if p.Talker {
			why = append(why, fmt.Sprintf("talker and vocoder loaded (%s parameters, 16-bit), as vllm-omni and SGLang-Omni do to answer in speech", billions(m.TalkerParams())))
		} else {
			why = append(why, fmt.Sprintf("%s serves the thinker only (text out): the talker and vocoder (%s parameters) stay unloaded; --talker plans vllm-omni or SGLang-Omni, which load them", req.Engine, billions(m.TalkerParams())))
		}
	}
	if !p.Fits {
		why = append(why, fmt.Sprintf("does not fit at tensor parallel %d: %s; needs %s per GPU", p.TP, lastNote(p), GiB(p.MinGPUMemoryBytes)))
	}
	return why
}

func lastNote(p *Plan) string {
	for _, o := range p.Options {
		if o.TP == p.TP && o.Note != "" {
			return o.Note
		}
	}
	return "too little memory"
}

func autoNote(d DType) string {
	if d == DTypeAuto {
		return "; chosen because 16-bit weights do not fit"
	}
	return ""
}

func autoKVNote(k KVDType) string {
	if k == KVAuto {
		return "; chosen because a 16-bit cache does not fit"
	}
	return ""
}

// servingAdvice is what to consider next.
func servingAdvice(p *Plan, req Request) []string {
	var advice []string
	if p.TP > 1 && req.Interconnect == hardware.PCIe {
		a := "these GPUs talk over PCIe: tensor parallelism all-reduces twice per layer every step, over ~32-64 GB/s instead of NVLink's 600-900 GB/s; prefer fewer, bigger GPUs"
		if p.PipelineCommand != "" {
			a += ", or split by layers with pipeline parallelism (below)"
		}
		advice = append(advice, a)
	}
	if used := p.TP * p.PP; p.Fits && req.Count > used {
		a := fmt.Sprintf("%d GPUs, %d per replica: run %d replicas behind the gateway (CUDA_VISIBLE_DEVICES per replica)", req.Count, used, req.Count/used)
		for _, o := range p.Options {
			if o.TP > p.TP && o.Fits {
				a += fmt.Sprintf(", or --tensor-parallel-size %d for %s KV tokens per replica (%.1f sequences of %d)", o.TP, commas(o.KVCacheTokens), o.MaxConcurrency, o.MaxModelLen)
				break
			}
		}
		advice = append(advice, a)
	}
	if p.Fits && p.MaxConcurrency < 2 {
		advice = append(advice, fmt.Sprintf("the KV cache holds %.2f sequences of %d tokens: fine for one long request at a time; lower --context or add GPUs for more", p.MaxConcurrency, p.MaxModelLen))
	}
	if !p.Fits {
		for tp := p.TP * 2; tp <= 64; tp *= 2 {
			if TPConstraint(req.Model.Text, p.DType, tp) != "" {
				continue
			}
			r := req
			r.Count, r.TP = tp, 0
			f := evalServing(r, p.Tokens, Layout{TP: tp, PP: 1, DType: p.DType, KVDType: p.KVDType, Talker: p.Talker})
			if f.fits {
				advice = append(advice, fmt.Sprintf("fits on %d× %s (tensor parallel %d): %s KV tokens", tp, req.GPU.Name, tp, commas(f.kvTokens)))
				break
			}
		}
	}
	return advice
}

// quantization is the engine's --quantization value for d ("" for none).
func quantization(d DType, sup hardware.Supports, e Engine) string {
	switch d {
	case FP8:
		return "fp8"
	case Int8:
		if e == SGLang {
			return "w8a8_int8"
		}
		return "" // vLLM reads it from the checkpoint
	case AWQ, GPTQ:
		if e == VLLM && sup.Int4 {
			return string(d) + "_marlin"
		}
		return string(d)
	}
	return ""
}

// command is the engine command for p at tensor parallel tp, pipeline pp.
func command(p *Plan, req Request, sup hardware.Supports, tp, pp int) string {
	u := strconv.FormatFloat(p.Utilization, 'f', -1, 64)
	q := quantization(p.DType, sup, req.Engine)
	f := vllmFlags
	if req.Engine == SGLang {
		f = sglangFlags
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %d", f.serve, p.Checkpoint, f.tp, tp)
	if pp > 1 {
		fmt.Fprintf(&b, " %s %d", f.pp, pp)
	}
	fmt.Fprintf(&b, " %s %d %s %s %s %d", f.context, p.MaxModelLen, f.memory, u, f.seqs, p.MaxNumSeqs)
	if p.DType == FP16 {
		b.WriteString(" --dtype half")
	}
	if q != "" {
		b.WriteString(" --quantization " + q)
	}
	if p.KVDType == KVFP8 {
		b.WriteString(" --kv-cache-dtype " + f.kvFP8)
	}
	return b.String()
}

// engineFlags are an engine's command and the names of its flags.
type engineFlags struct {
	serve, tp, pp, context, memory, seqs, kvFP8 string
}

var (
	vllmFlags = engineFlags{serve: "vllm serve", tp: "--tensor-parallel-size", pp: "--pipeline-parallel-size",
		context: "--max-model-len", memory: "--gpu-memory-utilization", seqs: "--max-num-seqs", kvFP8: "fp8"}
	sglangFlags = engineFlags{serve: "python -m sglang.launch_server --model-path", tp: "--tp", pp: "--pp-size",
		context: "--context-length", memory: "--mem-fraction-static", seqs: "--max-running-requests", kvFP8: "fp8_e5m2"}
)

// transformersWhy explains a transformers plan.
func transformersWhy(p *Plan, req Request, sup hardware.Supports, gpus int) []string {
	m := req.Model
	talker := m.Talker != nil
	why := []string{
		"transformers: one request at a time with flash-attention 2, every part of the checkpoint loaded (the setting of Qwen's minimum-memory tables)",
		fmt.Sprintf("weights %s: %s parameters in 16 bits%s", GiB(p.PerGPU.Weights), billions(m.Params()), map[bool]string{true: ", talker and vocoder included", false: ""}[talker]),
		fmt.Sprintf("prompt %s tokens × %s B: KV cache, activations and %g bytes of logits per vocabulary entry%s",
			commas(int64(p.Tokens.Total())), commas(int64(TransformersPromptTokenBytes(m, talker))), m.PromptLogitsBytes,
			map[bool]string{true: ", for the thinker and the talker", false: ""}[talker]),
	}
	if p.Tokens.VisionPatches > 0 {
		why = append(why, fmt.Sprintf("vision encoder over %s patches at once: %s B each", commas(int64(p.Tokens.VisionPatches)),
			commas(int64(m.Vision.PatchActivationBytes()+m.Vision.PatchPixelBytes()))))
	}
	over := fmt.Sprintf("overhead %s: CUDA context, workspaces, allocator", GiB(FrameworkOverhead))
	if talker {
		over += fmt.Sprintf(", and %s for speaking the answer (talker steps, vocoder)", GiB(SpeechOverhead))
	}
	why = append(why, over)
	if gpus > 1 {
		why = append(why, fmt.Sprintf("device_map=\"auto\" spreads the layers over %d GPUs", gpus))
	}
	if !sup.BF16 {
		why = append(why, fmt.Sprintf("flash-attention 2 needs Ampere; on %s transformers falls back to sdpa, which this estimate does not model", genName(req.GPU.Generation)))
	}
	return why
}

func transformersCommand(m *Model, d DType, gpus int, sup hardware.Supports) string {
	devices := make([]string, gpus)
	for i := range devices {
		devices[i] = strconv.Itoa(i)
	}
	dtype, attn := "torch.bfloat16", "flash_attention_2"
	if d == FP16 {
		dtype = "torch.float16"
	}
	if !sup.BF16 {
		attn = "sdpa"
	}
	return fmt.Sprintf(`CUDA_VISIBLE_DEVICES=%s python -c 'import torch; from transformers import %s as M; M.from_pretrained("%s", dtype=%s, device_map="auto", attn_implementation="%s")'`,
		strings.Join(devices, ","), m.HFClass, m.ID, dtype, attn)
}

// GiB formats bytes in units of 2^30.
func GiB(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

func billions(n int64) string { return fmt.Sprintf("%.2fB", float64(n)/1e9) }

// commas writes n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

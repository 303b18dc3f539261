package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/hardware"
)

func gpu(t *testing.T, name string) GPUSpec {
	t.Helper()
	g, ok := Catalog{}.Lookup(name)
	if !ok {
		t.Fatalf("no GPU %q", name)
	}
	return g
}

func TestTPConstraint(t *testing.T) {
	q7 := mustModel(t, "qwen3-omni-7b").Text
	q3 := mustModel(t, "qwen3-omni-30b").Text
	small := mustModel(t, "Qwen/Qwen2.5-Omni-3B").Text
	tests := []struct {
		name string
		t    Text
		d    DType
		tp   int
		want string // a part of the reason, "" for allowed
	}{
		{"7B tp4", q7, BF16, 4, ""},
		{"7B tp8: 28 heads", q7, BF16, 8, "28 attention heads"},
		{"30B tp8 replicates KV", q3, BF16, 8, ""},
		{"30B awq tp2: 384 rows", q3, AWQ, 2, ""},
		{"30B awq tp4: 192 rows", q3, AWQ, 4, "768 MLP rows over 4 GPUs"},
		{"7B gptq tp4: 4736 rows", q7, GPTQ, 4, ""},
		{"3B awq tp4: 2752 rows", small, AWQ, 4, "11008 MLP rows"},
		{"3 KV heads, tp 2", Text{Heads: 6, KVHeads: 3}, BF16, 2, "3 KV heads"},
	}
	for _, tt := range tests {
		got := TPConstraint(tt.t, tt.d, tt.tp)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLookups(t *testing.T) {
	for _, name := range []string{"Qwen/Qwen3-Omni-30B-A3B-Instruct", "qwen3-omni-30b", "QWEN3-OMNI-30B-A3B-INSTRUCT"} {
		if m, err := Lookup(name); err != nil || m.ID != "Qwen/Qwen3-Omni-30B-A3B-Instruct" {
			t.Errorf("Lookup(%q) = %v, %v", name, m, err)
		}
	}
	if m, _ := Lookup("qwen3-omni-7b"); m.ID != "Qwen/Qwen2.5-Omni-7B" {
		t.Errorf("qwen3-omni-7b is %s", m.ID)
	}
	for _, id := range []string{"Qwen/Qwen3-Omni-30B-A3B-Thinking", "Qwen/Qwen3-Omni-30B-A3B-Captioner"} {
		if m, _ := Lookup(id); m.Talker != nil {
			t.Errorf("%s has a talker", id)
		}
	}
	if _, err := Lookup("llama"); err == nil || !strings.Contains(err.Error(), "qwen3-omni-30b") {
		t.Errorf("unknown model: %v", err)
	}
	for _, name := range []string{"H100-80GB", "h100 80gb", "rtx_4090"} {
		if _, ok := (Catalog{}).Lookup(name); !ok {
			t.Errorf("no GPU %q", name)
		}
	}
}

// TestCatalog checks the adapter over internal/hardware: the driver's
// memory where it is below the marketed size, the catalog's otherwise,
// and the driver's names.
func TestCatalog(t *testing.T) {
	h := Catalog{}
	tests := []struct {
		name   string
		want   string
		memory int64
		gen    hardware.Generation
		link   hardware.Interconnect
	}{
		{"H100-80GB", "H100-80GB", 81559 * mib, hardware.Hopper, hardware.NVLink},
		{"NVIDIA H100 80GB HBM3", "H100-80GB", 81559 * mib, hardware.Hopper, hardware.NVLink},
		{"A100-80GB", "A100-80GB", 80 << 30, hardware.Ampere, hardware.NVLink},
		{"l4", "L4", 23034 * mib, hardware.Ada, hardware.PCIe},
		{"MI300X", "MI300X", 192 << 30, hardware.CDNA3, hardware.XGMI},
	}
	for _, tt := range tests {
		g, ok := h.Lookup(tt.name)
		if !ok || g.Name != tt.want || g.MemoryBytes != tt.memory || g.Generation != tt.gen || g.Link != tt.link {
			t.Errorf("Lookup(%q) = %+v, %v", tt.name, g, ok)
		}
		if diff := cmp.Diff(hardware.SupportsOf(g.Generation, g.ComputeCapability), h.Supports(g)); diff != "" {
			t.Errorf("%s supports (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, ok := h.Lookup("TPU-v5"); ok {
		t.Error("found a TPU")
	}
}

func TestDetected(t *testing.T) {
	h := Catalog{}
	m := hardware.Machine{Interconnect: hardware.PCIe, GPUs: []hardware.GPU{
		{Name: "NVIDIA L4", MemoryTotal: 23034 * mib, ComputeCapability: "8.9", Generation: hardware.Ada},
		{Name: "NVIDIA L4", MemoryTotal: 23000 * mib, ComputeCapability: "8.9", Generation: hardware.Ada},
	}}
	g, n, link, ok := Detected(m, h)
	want := GPUSpec{Name: "L4", MemoryBytes: 23000 * mib, Generation: hardware.Ada, ComputeCapability: "8.9", Link: hardware.PCIe}
	if !ok || n != 2 || link != hardware.PCIe || g != want {
		t.Errorf("%+v %d %s %v", g, n, link, ok)
	}
	// A GPU the catalog does not know keeps what the driver said.
	g, _, _, _ = Detected(hardware.Machine{GPUs: []hardware.GPU{{Name: "NVIDIA RTX A6000", MemoryTotal: 49140 * mib, ComputeCapability: "8.6", Generation: hardware.Ampere}}}, h)
	if g.Name != "NVIDIA RTX A6000" || g.MemoryBytes != 49140*mib || g.Generation != hardware.Ampere {
		t.Errorf("unknown GPU: %+v", g)
	}
	if _, _, _, ok := Detected(hardware.Machine{}, h); ok {
		t.Error("detected GPUs on a machine without any")
	}
}

func has(t *testing.T, lines []string, part string) {
	t.Helper()
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, part) }) {
		t.Errorf("no line has %q:\n%s", part, strings.Join(lines, "\n"))
	}
}

func TestMake(t *testing.T) {
	q7 := mustModel(t, "qwen3-omni-7b")
	q3 := mustModel(t, "qwen3-omni-30b")
	tests := []struct {
		name  string
		req   Request
		check func(t *testing.T, p *Plan)
	}{
		{"30B fits one H100 with little KV", Request{Model: q3, GPU: gpu(t, "H100-80GB"), Count: 4}, func(t *testing.T, p *Plan) {
			if !p.Fits || p.TP != 1 || p.DType != BF16 || p.KVDType != KV16 {
				t.Errorf("TP %d %s/%s fits %v", p.TP, p.DType, p.KVDType, p.Fits)
			}
			if p.MaxConcurrency >= 2 || len(p.Options) != 3 {
				t.Errorf("concurrency %.2f, %d options", p.MaxConcurrency, len(p.Options))
			}
			has(t, p.Advice, "run 4 replicas")
			has(t, p.Advice, "--tensor-parallel-size 2")
			has(t, p.Why, "attention: vLLM picks flash-attn-3 on Hopper")
		}},
		{"30B on 4 L4: fp8 weights, PCIe advice and a pipeline command", Request{Model: q3, GPU: gpu(t, "L4"), Count: 4, Context: 65536}, func(t *testing.T, p *Plan) {
			if !p.Fits || p.TP != 4 || p.DType != FP8 {
				t.Errorf("TP %d %s fits %v", p.TP, p.DType, p.Fits)
			}
			has(t, p.Why, "fp8 weights: Ada has fp8 tensor cores")
			has(t, p.Advice, "PCIe")
			if !strings.Contains(p.Command, "--quantization fp8") || !strings.Contains(p.PipelineCommand, "--pipeline-parallel-size 4") {
				t.Errorf("commands:\n%s\n%s", p.Command, p.PipelineCommand)
			}
		}},
		// bf16 weights leave 0.18 GiB on an L4: 3,300 tokens in 16 bits.
		{"fp8 KV when 16-bit KV falls short", Request{Model: q7, GPU: gpu(t, "L4"), Context: 4096}, func(t *testing.T, p *Plan) {
			if !p.Fits || p.DType != BF16 || p.KVDType != KVFP8 || !strings.HasSuffix(p.Command, "--kv-cache-dtype fp8") {
				t.Errorf("%s/%s, fits %v: %s", p.DType, p.KVDType, p.Fits, p.Command)
			}
			has(t, p.Why, "fp8 KV cache: Ada supports it; halves KV memory (57,344 → 28,672 B per token per GPU); chosen because a 16-bit cache does not fit")
			has(t, p.Why, "attention: vLLM picks flashinfer on Ada (an fp8 KV cache moves it off flash-attn-2)")
		}},
		{"no fp8 on Ampere", Request{Model: q7, GPU: gpu(t, "A100-80GB"), DType: FP8, KVDType: KVFP8}, func(t *testing.T, p *Plan) {
			if p.DType != BF16 || p.KVDType != KV16 || strings.Contains(p.Command, "fp8") {
				t.Errorf("%s/%s: %s", p.DType, p.KVDType, p.Command)
			}
			has(t, p.Why, "fp8 weights: Ampere has no fp8")
			has(t, p.Why, "fp8 KV cache: Ampere has no fp8")
		}},
		{"awq with Marlin and the published checkpoint", Request{Model: q7, GPU: gpu(t, "RTX-4090"), DType: AWQ}, func(t *testing.T, p *Plan) {
			if p.Checkpoint != "Qwen/Qwen2.5-Omni-7B-AWQ" || !strings.Contains(p.Command, "--quantization awq_marlin") {
				t.Errorf("%s", p.Command)
			}
		}},
		{"fp16 on Turing", Request{Model: q7, GPU: gpu(t, "T4"), Count: 2, DType: AWQ}, func(t *testing.T, p *Plan) {
			if !strings.Contains(p.Command, "--quantization awq") || strings.Contains(p.Command, "awq_marlin") {
				t.Errorf("%s", p.Command)
			}
		}},
		{"no AWQ kernels on Volta", Request{Model: q7, GPU: gpu(t, "V100-32GB"), DType: AWQ}, func(t *testing.T, p *Plan) {
			if p.DType != FP16 {
				t.Errorf("%s", p.DType)
			}
			has(t, p.Why, "awq weights: no 4-bit kernels for Volta; planned in fp16")
		}},
		{"GPTQ's plain kernels on Volta", Request{Model: q7, GPU: gpu(t, "V100-32GB"), DType: GPTQ}, func(t *testing.T, p *Plan) {
			if p.DType != GPTQ || !strings.HasSuffix(p.Command, "--quantization gptq") {
				t.Errorf("%s: %s", p.DType, p.Command)
			}
			has(t, p.Why, "the plain gptq kernels")
		}},
		{"does not fit, and where it would", Request{Model: q3, GPU: gpu(t, "L4"), Count: 1, DType: BF16, KVDType: KV16}, func(t *testing.T, p *Plan) {
			if p.Fits {
				t.Fatal("fits")
			}
			has(t, p.Why, "the weights alone do not fit")
			has(t, p.Advice, "fits on 4× L4")
			if p.MinGPUMemoryGB < 60 {
				t.Errorf("min memory %.2f GB", p.MinGPUMemoryGB)
			}
		}},
		{"sglang lowers its static fraction", Request{Model: q7, GPU: gpu(t, "L4"), Engine: SGLang, DType: FP8}, func(t *testing.T, p *Plan) {
			if p.Utilization >= 0.9 || !strings.Contains(p.Command, "python -m sglang.launch_server --model-path Qwen/Qwen2.5-Omni-7B --tp 1") {
				t.Errorf("%g: %s", p.Utilization, p.Command)
			}
			has(t, p.Why, "--mem-fraction-static")
		}},
		{"talker loaded", Request{Model: q7, GPU: gpu(t, "H100-80GB"), Talker: true}, func(t *testing.T, p *Plan) {
			if !p.Talker || p.Params.Talker == 0 {
				t.Errorf("talker %v %d", p.Talker, p.Params.Talker)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Make(tt.req, Catalog{})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestMakeErrors(t *testing.T) {
	q7 := mustModel(t, "qwen3-omni-7b")
	h100 := gpu(t, "H100-80GB")
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"context past the model's", Request{Model: q7, GPU: h100, Context: 65536}, "takes at most 32768"},
		{"request past the model's", Request{Model: q7, GPU: h100, Media: Media{VideoSeconds: 60}}, "the request is"},
		{"request past --context", Request{Model: q7, GPU: h100, Context: 1024, Media: Media{VideoSeconds: 10}}, "more than --context"},
		{"tp not a power of two", Request{Model: q7, GPU: h100, Count: 4, TP: 3}, "power of two"},
		{"tp over count", Request{Model: q7, GPU: h100, Count: 2, TP: 4}, "needs 4 GPUs"},
		{"tp the heads refuse", Request{Model: q7, GPU: h100, Count: 8, TP: 8}, "28 attention heads"},
		{"bad utilization", Request{Model: q7, GPU: h100, GPUMemoryUtilization: 1.5}, "(0, 1]"},
		{"transformers in fp8", Request{Model: q7, GPU: h100, Engine: Transformers, DType: FP8}, "16-bit"},
	}
	for _, tt := range tests {
		_, err := Make(tt.req, Catalog{})
		if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestTransformersPlan is the table's setting: the peak is the minimum,
// and device_map spreads it.
func TestTransformersPlan(t *testing.T) {
	m := mustModel(t, "qwen3-omni-30b")
	p, err := Make(Request{Model: m, GPU: gpu(t, "H100-80GB"), Count: 2, Engine: Transformers,
		Media: Media{VideoSeconds: 60, VideoAudio: true}}, Catalog{})
	if err != nil {
		t.Fatal(err)
	}
	b := TransformersPeak(m, p.Tokens, true)
	want := Plan{Fits: true, PP: 2, MinGPUMemoryBytes: b.Weights + b.Activations + b.Overhead}
	got := Plan{Fits: p.Fits, PP: p.PP, MinGPUMemoryBytes: p.MinGPUMemoryBytes}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(p.Command, "CUDA_VISIBLE_DEVICES=0,1 python -c") || !strings.Contains(p.Command, `attn_implementation="flash_attention_2"`) {
		t.Errorf("%s", p.Command)
	}
}

func TestCommas(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -98304: "-98,304"} {
		if got := commas(in); got != want {
			t.Errorf("commas(%d) = %q, want %q", in, got, want)
		}
	}
}

package plan

import (
	"strings"

	"github.com/omnigate/omnigate/internal/hardware"
)

// GPUSpec is one GPU model as the planner needs it.
type GPUSpec struct {
	Name string `json:"name"`
	// MemoryBytes is the memory as the driver reports it (nvidia-smi's
	// MiB x 2^20): an "80GB" H100 has 81,559 MiB.
	MemoryBytes       int64               `json:"memory_bytes"`
	Generation        hardware.Generation `json:"generation"`
	ComputeCapability string              `json:"compute_capability,omitempty"`
	// Link is how hosts with several of these usually connect them: SXM
	// boards over NVLink, PCIe cards over PCIe. --interconnect overrides it.
	Link hardware.Interconnect `json:"link"`
}

// Supports is what a GPU generation's kernels can do, as the engines use
// them.
type Supports struct {
	BF16       bool `json:"bf16"`
	FP8        bool `json:"fp8"`          // fp8 weights and activations (W8A8)
	FP8KVCache bool `json:"fp8_kv_cache"` // fp8 KV cache
	// Int4 is the vLLM quantization that runs AWQ/GPTQ fastest here:
	// "marlin" (awq_marlin, gptq_marlin), "plain" (awq, gptq) or "" (none).
	Int4 string `json:"int4"`
	// Attention is the attention backend vLLM picks.
	Attention string `json:"attention"`
}

// Hardware is where the planner looks up GPU models and what their
// generation supports. hardware.Lookup and hardware's generation table
// satisfy it through an adapter of a few lines; until they land,
// StubHardware does.
type Hardware interface {
	Lookup(name string) (GPUSpec, bool)
	Supports(g hardware.Generation) Supports
}

// StubHardware is a small built-in GPU table for the planner, to be
// replaced by internal/hardware's catalog.
type StubHardware struct{}

var _ Hardware = StubHardware{}

const mib = 1 << 20

// stubGPUs are the GPU models the stub knows: memory as nvidia-smi reports
// it, generation and compute capability, and the usual link.
var stubGPUs = []GPUSpec{
	{"H100-80GB", 81559 * mib, hardware.Hopper, "9.0", hardware.NVLink},
	{"H200", 143771 * mib, hardware.Hopper, "9.0", hardware.NVLink},
	{"B200", 183359 * mib, hardware.Blackwell, "10.0", hardware.NVLink},
	{"A100-80GB", 81920 * mib, hardware.Ampere, "8.0", hardware.NVLink},
	{"A100-40GB", 40960 * mib, hardware.Ampere, "8.0", hardware.NVLink},
	{"A10", 23028 * mib, hardware.Ampere, "8.6", hardware.PCIe},
	{"L40S", 46068 * mib, hardware.Ada, "8.9", hardware.PCIe},
	{"L4", 23034 * mib, hardware.Ada, "8.9", hardware.PCIe},
	{"RTX-4090", 24564 * mib, hardware.Ada, "8.9", hardware.PCIe},
	{"RTX-5090", 32607 * mib, hardware.Blackwell, "12.0", hardware.PCIe},
	{"T4", 15360 * mib, hardware.Turing, "7.5", hardware.PCIe},
	{"V100-32GB", 32768 * mib, hardware.Volta, "7.0", hardware.NVLink},
}

// Lookup finds a GPU model by name, ignoring case, dashes and spaces
// ("h100-80gb", "H100 80GB").
func (StubHardware) Lookup(name string) (GPUSpec, bool) {
	key := gpuKey(name)
	for _, g := range stubGPUs {
		if gpuKey(g.Name) == key {
			return g, true
		}
	}
	return GPUSpec{}, false
}

// StubGPUNames lists the stub's GPU models.
func StubGPUNames() []string {
	names := make([]string, len(stubGPUs))
	for i, g := range stubGPUs {
		names[i] = g.Name
	}
	return names
}

func gpuKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// Supports is the per-generation table: bf16 from Ampere on; fp8 weights
// and KV cache from Ada on (fp8 tensor cores: Ada, Hopper, Blackwell, MI300;
// not Ampere); Marlin 4-bit kernels from Ampere on, the plain AWQ/GPTQ
// kernels on Turing; FlashAttention needs Ampere (FA3 on Hopper).
func (StubHardware) Supports(g hardware.Generation) Supports {
	switch g {
	case hardware.Volta:
		return Supports{Int4: "plain", Attention: "TRITON_ATTN"}
	case hardware.Turing:
		return Supports{Int4: "plain", Attention: "TRITON_ATTN"}
	case hardware.Ampere, hardware.Unknown:
		return Supports{BF16: true, Int4: "marlin", Attention: "FLASH_ATTN (FlashAttention 2)"}
	case hardware.Ada:
		return Supports{BF16: true, FP8: true, FP8KVCache: true, Int4: "marlin", Attention: "FLASH_ATTN (FlashAttention 2)"}
	case hardware.Hopper:
		return Supports{BF16: true, FP8: true, FP8KVCache: true, Int4: "marlin", Attention: "FLASH_ATTN (FlashAttention 3)"}
	case hardware.Blackwell:
		return Supports{BF16: true, FP8: true, FP8KVCache: true, Int4: "marlin", Attention: "FLASHINFER"}
	case hardware.CDNA2:
		return Supports{BF16: true, Int4: "plain", Attention: "ROCM_ATTN"}
	case hardware.CDNA3:
		return Supports{BF16: true, FP8: true, FP8KVCache: true, Int4: "plain", Attention: "ROCM_AITER_FA"}
	}
	return Supports{BF16: true}
}

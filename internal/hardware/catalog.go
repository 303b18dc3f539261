package hardware

import (
	"regexp"
	"strconv"
	"strings"
)

// FormFactor is how a GPU is built into a machine, which decides what can
// join it to its neighbours.
type FormFactor string

// Form factors.
const (
	FormSXM  FormFactor = "SXM"  // NVIDIA's socketed module on an HGX/DGX board
	FormPCIe FormFactor = "PCIe" // a card in a PCIe slot
	FormOAM  FormFactor = "OAM"  // the OCP accelerator module (AMD Instinct)
)

// XGMI is AMD's Infinity Fabric between every pair of GPUs on an OAM
// board. Detection does not report it yet; the catalog does.
const XGMI Interconnect = "xgmi"

const gib = 1 << 30

// Model is one GPU model the catalog knows.
type Model struct {
	Name   string `json:"name"`   // the operator's name: "H100-80GB"
	Vendor string `json:"vendor"` // nvidia or amd
	// Memory is bytes: the marketed size taken as GiB. The driver reports
	// a little less (an H100 80GB shows 79.6 GiB, 81559 MiB).
	Memory            int64      `json:"memory_bytes"`
	Generation        Generation `json:"generation"`
	ComputeCapability string     `json:"compute_capability,omitempty"` // "" for AMD
	FormFactor        FormFactor `json:"form_factor"`
	// Link is what joins GPUs of this model in one machine: NVLink on SXM
	// boards (NVSwitch on 8-GPU HGX H100/H200/B200 and A100), XGMI on AMD
	// OAM boards, else PCIe. PCIe A100/H100/A40 and RTX 3090 cards take an
	// optional NVLink bridge between pairs; a planner cannot count on one,
	// so they say PCIe (detection sees a bridge in nvidia-smi topo -m).
	Link Interconnect `json:"link"`

	aliases []string // other spellings: the driver's names, older names
}

// Supports says what a GPU generation's kernels and number formats allow
// in vLLM, as far as the catalog is sure of it.
type Supports struct {
	// FP8 is FP8 tensor-core compute (W8A8 FP8 checkpoints): compute
	// capability 8.9 and later, and AMD CDNA3. Ampere runs FP8 checkpoints
	// weight-only through FP8 Marlin, which saves memory but not compute;
	// that does not count here.
	FP8 bool `json:"fp8"`
	// BF16 is bfloat16: compute capability 8.0 and later (vLLM falls back
	// to float16 on Volta and Turing), and AMD CDNA2 and CDNA3.
	BF16 bool `json:"bf16"`
	// FP8KV is an FP8 KV cache (kv_cache_dtype fp8) on hardware FP8:
	// compute capability 8.9 and later, and CDNA3. vLLM can store one on
	// Ampere too, dequantised inside FlashInfer or Triton attention, at a
	// cost in speed the catalog does not plan on.
	FP8KV bool `json:"fp8_kv_cache"`
	// Int4 is fast int4 weight kernels for AWQ and GPTQ checkpoints: Marlin
	// needs compute capability 8.0; on Hopper vLLM picks Machete for GPTQ
	// and W4A16 checkpoints. Older GPUs and ROCm have slower int4 paths,
	// which do not count.
	Int4 bool `json:"int4"`
	// Int4Kernel names the kernel: "machete" (Hopper), "marlin", or "".
	Int4Kernel string `json:"int4_kernel,omitempty"`
	// Attention is the attention backend vLLM picks for an unquantised KV
	// cache (an FP8 KV cache moves Ampere and Ada to FlashInfer):
	// "flash-attn-3" (Hopper), "flash-attn-2" (Ampere, Ada, RTX 50),
	// "flashinfer" (B200, whose first choice it is; Turing, where
	// FlashAttention needs 8.0 and FlashInfer starts at 7.5), "triton"
	// (Volta, below FlashInfer's 7.5; and ROCm without AITER). vLLM's
	// order on CUDA is FLASH_ATTN, FLASHINFER, TRITON_ATTN, with FLASHINFER
	// first on compute capability 10.x; Turing falls to Triton when
	// FlashInfer is not installed. The Turing and Volta answers are the
	// least certain.
	Attention string `json:"attention"`
}

// models is the catalog. Names are as operators type them; aliases hold
// the driver's spellings. Memory is the marketed size.
var models = []Model{
	{Name: "A100-80GB", Vendor: "nvidia", Memory: 80 * gib, Generation: Ampere, ComputeCapability: "8.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"A100-SXM4-80GB", "A100-SXM-80GB", "A100-80GB-SXM"}},
	{Name: "A100-40GB", Vendor: "nvidia", Memory: 40 * gib, Generation: Ampere, ComputeCapability: "8.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"A100-SXM4-40GB", "A100-SXM-40GB", "A100-40GB-SXM"}},
	{Name: "A100-PCIE-80GB", Vendor: "nvidia", Memory: 80 * gib, Generation: Ampere, ComputeCapability: "8.0", FormFactor: FormPCIe, Link: PCIe,
		aliases: []string{"A100-80GB-PCIE"}},
	{Name: "A100-PCIE-40GB", Vendor: "nvidia", Memory: 40 * gib, Generation: Ampere, ComputeCapability: "8.0", FormFactor: FormPCIe, Link: PCIe,
		aliases: []string{"A100-40GB-PCIE"}},
	{Name: "H100-80GB", Vendor: "nvidia", Memory: 80 * gib, Generation: Hopper, ComputeCapability: "9.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"H100", "H100-SXM", "H100-SXM5", "H100-SXM5-80GB", "H100-80GB-HBM3", "H100-SXM-80GB"}},
	{Name: "H100-PCIE", Vendor: "nvidia", Memory: 80 * gib, Generation: Hopper, ComputeCapability: "9.0", FormFactor: FormPCIe, Link: PCIe,
		aliases: []string{"H100-PCIE-80GB", "H100-80GB-PCIE"}},
	{Name: "H200", Vendor: "nvidia", Memory: 141 * gib, Generation: Hopper, ComputeCapability: "9.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"H200-SXM", "H200-141GB", "H200-SXM-141GB"}},
	{Name: "B200", Vendor: "nvidia", Memory: 180 * gib, Generation: Blackwell, ComputeCapability: "10.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"B200-SXM", "B200-180GB"}},
	{Name: "L4", Vendor: "nvidia", Memory: 24 * gib, Generation: Ada, ComputeCapability: "8.9", FormFactor: FormPCIe, Link: PCIe},
	{Name: "L40S", Vendor: "nvidia", Memory: 48 * gib, Generation: Ada, ComputeCapability: "8.9", FormFactor: FormPCIe, Link: PCIe},
	{Name: "A10", Vendor: "nvidia", Memory: 24 * gib, Generation: Ampere, ComputeCapability: "8.6", FormFactor: FormPCIe, Link: PCIe},
	{Name: "A10G", Vendor: "nvidia", Memory: 24 * gib, Generation: Ampere, ComputeCapability: "8.6", FormFactor: FormPCIe, Link: PCIe},
	{Name: "A40", Vendor: "nvidia", Memory: 48 * gib, Generation: Ampere, ComputeCapability: "8.6", FormFactor: FormPCIe, Link: PCIe},
	{Name: "T4", Vendor: "nvidia", Memory: 16 * gib, Generation: Turing, ComputeCapability: "7.5", FormFactor: FormPCIe, Link: PCIe},
	// V100 boards of eight GPUs are a hybrid cube mesh: some pairs cross
	// PCIe, and detection says pcie for them.
	{Name: "V100", Vendor: "nvidia", Memory: 16 * gib, Generation: Volta, ComputeCapability: "7.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"V100-16GB", "V100-SXM2-16GB"}},
	{Name: "V100-32GB", Vendor: "nvidia", Memory: 32 * gib, Generation: Volta, ComputeCapability: "7.0", FormFactor: FormSXM, Link: NVLink,
		aliases: []string{"V100-SXM2-32GB"}},
	{Name: "RTX-4090", Vendor: "nvidia", Memory: 24 * gib, Generation: Ada, ComputeCapability: "8.9", FormFactor: FormPCIe, Link: PCIe},
	{Name: "RTX-3090", Vendor: "nvidia", Memory: 24 * gib, Generation: Ampere, ComputeCapability: "8.6", FormFactor: FormPCIe, Link: PCIe},
	{Name: "RTX-5090", Vendor: "nvidia", Memory: 32 * gib, Generation: Blackwell, ComputeCapability: "12.0", FormFactor: FormPCIe, Link: PCIe},
	{Name: "MI300X", Vendor: "amd", Memory: 192 * gib, Generation: CDNA3, FormFactor: FormOAM, Link: XGMI,
		aliases: []string{"MI300X-OAM"}},
	// An MI250 or MI250X card is two devices (GCDs) of 64 GiB each, and
	// software sees two GPUs; the catalog describes one device.
	{Name: "MI250", Vendor: "amd", Memory: 64 * gib, Generation: CDNA2, FormFactor: FormOAM, Link: XGMI,
		aliases: []string{"MI250X", "MI250X/MI250"}},
}

// byKey finds a model by the key of any of its names.
var byKey = func() map[string]int {
	m := make(map[string]int)
	for i, md := range models {
		m[key(md.Name)] = i
		for _, a := range md.aliases {
			m[key(a)] = i
		}
	}
	return m
}()

// vendorWords are dropped from a name before it is compared: the
// driver's names carry them, operators leave them out.
var vendorWords = map[string]bool{"NVIDIA": true, "TESLA": true, "GEFORCE": true, "AMD": true, "INSTINCT": true}

// key folds a name to what Lookup compares: upper case, without vendor
// words, spaces, dashes or underscores ("NVIDIA GeForce RTX 4090" and
// "rtx-4090" are both "RTX4090").
func key(name string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(strings.ToUpper(name), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_'
	}) {
		if !vendorWords[w] {
			b.WriteString(w)
		}
	}
	return b.String()
}

// Lookup finds a model by the name an operator types ("H100-80GB",
// "rtx-4090") or the name the driver reports ("NVIDIA H100 80GB HBM3",
// "Tesla T4", "AMD Instinct MI300X OAM"), case and separators aside.
func Lookup(name string) (Model, bool) {
	i, ok := byKey[key(name)]
	if !ok {
		return Model{}, false
	}
	return models[i], true
}

// Models lists the catalog in its order.
func Models() []Model {
	return append([]Model(nil), models...)
}

// Supports says what this model supports.
func (m Model) Supports() Supports { return SupportsOf(m.Generation, m.ComputeCapability) }

// Supports says what this GPU supports.
func (g GPU) Supports() Supports { return SupportsOf(g.Generation, g.ComputeCapability) }

// families give the compute capability of NVIDIA GPUs the catalog does
// not name, by the model number in the driver's name; the first match
// wins. Detection needs them only on drivers too old to report
// compute_cap (before R510), which predate Ada and Hopper.
var families = []struct {
	re *regexp.Regexp
	cc string
}{
	{regexp.MustCompile(`\b(A100|A800|A30)\b`), "8.0"},
	{regexp.MustCompile(`\b(A10G?|A16|A2|A40|A\d000|RTX 30\d0( TI)?)\b`), "8.6"},
	{regexp.MustCompile(`\b(T4|RTX 20\d0( TI| SUPER)?|QUADRO RTX \d000|TITAN RTX)\b`), "7.5"},
	{regexp.MustCompile(`\b(V100S?|TITAN V)\b`), "7.0"},
	{regexp.MustCompile(`\b(L4|L40S?|L20|RTX 40\d0( TI)?)\b`), "8.9"},
	{regexp.MustCompile(`\b(H100|H200|H800|GH200)\b`), "9.0"},
	{regexp.MustCompile(`\b(B100|B200|GB200)\b`), "10.0"},
	{regexp.MustCompile(`\bRTX 50\d0\b`), "12.0"},
}

// computeFromName is the compute capability of an NVIDIA GPU by its
// driver name: the catalog's, else its family's, else "".
func computeFromName(name string) string {
	if m, ok := Lookup(name); ok {
		return m.ComputeCapability
	}
	up := strings.ToUpper(name)
	for _, f := range families {
		if f.re.MatchString(up) {
			return f.cc
		}
	}
	return ""
}

// GenerationOf is the generation of an NVIDIA compute capability
// ("9.0": Hopper), or Unknown.
func GenerationOf(computeCapability string) Generation {
	major, minor, ok := parseCompute(computeCapability)
	if !ok {
		return Unknown
	}
	switch {
	case major == 7 && minor < 5:
		return Volta
	case major == 7:
		return Turing
	case major == 8 && minor == 9:
		return Ada
	case major == 8:
		return Ampere
	case major == 9:
		return Hopper
	case major == 10 || major == 12:
		return Blackwell
	}
	return Unknown
}

// parseCompute splits "8.6" into 8 and 6.
func parseCompute(s string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, false
	}
	return major, minor, true
}

// representative is the compute capability SupportsOf assumes for an
// NVIDIA generation given without one.
var representative = map[Generation]string{
	Volta: "7.0", Turing: "7.5", Ampere: "8.0", Ada: "8.9", Hopper: "9.0", Blackwell: "10.0",
}

// SupportsOf says what a GPU supports from its compute capability
// (NVIDIA), or from its generation when the capability is "" (AMD, or a
// GPU named without one). An unknown GPU supports nothing the catalog
// vouches for; its Attention is "".
func SupportsOf(g Generation, computeCapability string) Supports {
	switch g {
	case CDNA3:
		// ROCm: vLLM's default attention is its Triton backend; AITER's
		// kernels are opt-in (VLLM_ROCM_USE_AITER).
		return Supports{FP8: true, BF16: true, FP8KV: true, Attention: "triton"}
	case CDNA2:
		return Supports{BF16: true, Attention: "triton"}
	}
	cc := computeCapability
	if cc == "" {
		cc = representative[g]
	}
	major, minor, ok := parseCompute(cc)
	if !ok || major < 7 {
		return Supports{}
	}
	v := major*10 + minor
	s := Supports{BF16: v >= 80, FP8: v >= 89, FP8KV: v >= 89, Int4: v >= 80}
	switch {
	case major == 9:
		s.Int4Kernel = "machete"
	case s.Int4:
		s.Int4Kernel = "marlin"
	}
	switch {
	case major == 10:
		s.Attention = "flashinfer"
	case major == 9:
		s.Attention = "flash-attn-3"
	case v >= 80:
		s.Attention = "flash-attn-2"
	case v >= 75:
		s.Attention = "flashinfer"
	default:
		s.Attention = "triton"
	}
	return s
}

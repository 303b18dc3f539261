package hardware

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name   string
		want   string // the model's Name; "" for not found
		gen    Generation
		cc     string
		memGiB int64
		link   Interconnect
	}{
		// As operators type them.
		{"A100-80GB", "A100-80GB", Ampere, "8.0", 80, NVLink},
		{"A100-40GB", "A100-40GB", Ampere, "8.0", 40, NVLink},
		{"H100-80GB", "H100-80GB", Hopper, "9.0", 80, NVLink},
		{"H100-PCIE", "H100-PCIE", Hopper, "9.0", 80, PCIe},
		{"H200", "H200", Hopper, "9.0", 141, NVLink},
		{"L4", "L4", Ada, "8.9", 24, PCIe},
		{"L40S", "L40S", Ada, "8.9", 48, PCIe},
		{"A10", "A10", Ampere, "8.6", 24, PCIe},
		{"A10G", "A10G", Ampere, "8.6", 24, PCIe},
		{"T4", "T4", Turing, "7.5", 16, PCIe},
		{"V100", "V100", Volta, "7.0", 16, NVLink},
		{"RTX-4090", "RTX-4090", Ada, "8.9", 24, PCIe},
		{"RTX-3090", "RTX-3090", Ampere, "8.6", 24, PCIe},
		{"B200", "B200", Blackwell, "10.0", 180, NVLink},
		{"MI300X", "MI300X", CDNA3, "", 192, XGMI},
		{"MI250", "MI250", CDNA2, "", 64, XGMI},
		// Case and separators aside.
		{"h100-80gb", "H100-80GB", Hopper, "9.0", 80, NVLink},
		{"rtx4090", "RTX-4090", Ada, "8.9", 24, PCIe},
		{"RTX 3090", "RTX-3090", Ampere, "8.6", 24, PCIe},
		{"h100_pcie", "H100-PCIE", Hopper, "9.0", 80, PCIe},
		// As the driver reports them.
		{"NVIDIA H100 80GB HBM3", "H100-80GB", Hopper, "9.0", 80, NVLink},
		{"NVIDIA H100 PCIe", "H100-PCIE", Hopper, "9.0", 80, PCIe},
		{"NVIDIA A100-SXM4-80GB", "A100-80GB", Ampere, "8.0", 80, NVLink},
		{"NVIDIA A100-SXM4-40GB", "A100-40GB", Ampere, "8.0", 40, NVLink},
		{"NVIDIA A100 80GB PCIe", "A100-PCIE-80GB", Ampere, "8.0", 80, PCIe},
		{"NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB", Ampere, "8.0", 40, PCIe},
		{"NVIDIA H200", "H200", Hopper, "9.0", 141, NVLink},
		{"NVIDIA B200", "B200", Blackwell, "10.0", 180, NVLink},
		{"NVIDIA L4", "L4", Ada, "8.9", 24, PCIe},
		{"NVIDIA L40S", "L40S", Ada, "8.9", 48, PCIe},
		{"NVIDIA A10G", "A10G", Ampere, "8.6", 24, PCIe},
		{"NVIDIA GeForce RTX 4090", "RTX-4090", Ada, "8.9", 24, PCIe},
		{"NVIDIA GeForce RTX 3090", "RTX-3090", Ampere, "8.6", 24, PCIe},
		{"NVIDIA GeForce RTX 5090", "RTX-5090", Blackwell, "12.0", 32, PCIe},
		{"Tesla T4", "T4", Turing, "7.5", 16, PCIe},
		{"Tesla V100-SXM2-16GB", "V100", Volta, "7.0", 16, NVLink},
		{"Tesla V100-SXM2-32GB", "V100-32GB", Volta, "7.0", 32, NVLink},
		{"AMD Instinct MI300X", "MI300X", CDNA3, "", 192, XGMI},
		{"AMD Instinct MI300X OAM", "MI300X", CDNA3, "", 192, XGMI},
		{"AMD Instinct MI250X/MI250", "MI250", CDNA2, "", 64, XGMI},
		// Not in the catalog: no guessing.
		{"A100", "", Unknown, "", 0, None},
		{"NVIDIA A1000", "", Unknown, "", 0, None},
		{"Tesla V100-PCIE-32GB", "", Unknown, "", 0, None},
		{"H1000", "", Unknown, "", 0, None},
		{"", "", Unknown, "", 0, None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := Lookup(tt.name)
			if ok != (tt.want != "") {
				t.Fatalf("Lookup(%q) found %v (%q), want found %v", tt.name, ok, m.Name, tt.want != "")
			}
			if !ok {
				return
			}
			got := []any{m.Name, m.Generation, m.ComputeCapability, m.Memory / gib, m.Link}
			want := []any{tt.want, tt.gen, tt.cc, tt.memGiB, tt.link}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Lookup(%q) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestCatalogConsistent checks every model against the rules the
// catalog's fields follow, and that no two names fold to one key.
func TestCatalogConsistent(t *testing.T) {
	keys := map[string]string{}
	for _, m := range Models() {
		for _, n := range append([]string{m.Name}, m.aliases...) {
			if other, dup := keys[key(n)]; dup {
				t.Errorf("%q (%s) and %s fold to one key %q", n, m.Name, other, key(n))
			}
			keys[key(n)] = m.Name
		}
		switch m.Vendor {
		case "nvidia":
			if g := GenerationOf(m.ComputeCapability); g != m.Generation {
				t.Errorf("%s: compute capability %s is %q, the catalog says %q", m.Name, m.ComputeCapability, g, m.Generation)
			}
			if (m.FormFactor == FormSXM) != (m.Link == NVLink) {
				t.Errorf("%s: form factor %s with link %s", m.Name, m.FormFactor, m.Link)
			}
		case "amd":
			if m.ComputeCapability != "" || m.FormFactor != FormOAM || m.Link != XGMI {
				t.Errorf("%s: %+v", m.Name, m)
			}
		default:
			t.Errorf("%s: vendor %q", m.Name, m.Vendor)
		}
		if m.Memory <= 0 {
			t.Errorf("%s: memory %d", m.Name, m.Memory)
		}
	}
}

func TestGenerationOf(t *testing.T) {
	tests := map[string]Generation{
		"7.0": Volta, "7.2": Volta, "7.5": Turing, "8.0": Ampere, "8.6": Ampere, "8.7": Ampere,
		"8.9": Ada, "9.0": Hopper, "10.0": Blackwell, "12.0": Blackwell,
		"6.1": Unknown, "11.0": Unknown, "": Unknown, "9": Unknown, "x.y": Unknown, "[N/A]": Unknown,
	}
	for cc, want := range tests {
		if got := GenerationOf(cc); got != want {
			t.Errorf("GenerationOf(%q) = %q, want %q", cc, got, want)
		}
	}
}

func TestSupportsOf(t *testing.T) {
	tests := []struct {
		name string
		gen  Generation
		cc   string
		want Supports
	}{
		{"V100", Volta, "7.0", Supports{Attention: "triton"}},
		{"T4", Turing, "7.5", Supports{Attention: "flashinfer"}},
		{"A100", Ampere, "8.0", Supports{BF16: true, Int4: true, Int4Kernel: "marlin", Attention: "flash-attn-2"}},
		{"A10", Ampere, "8.6", Supports{BF16: true, Int4: true, Int4Kernel: "marlin", Attention: "flash-attn-2"}},
		{"L4", Ada, "8.9", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "marlin", Attention: "flash-attn-2"}},
		{"H100", Hopper, "9.0", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "machete", Attention: "flash-attn-3"}},
		{"B200", Blackwell, "10.0", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "marlin", Attention: "flashinfer"}},
		{"RTX 5090", Blackwell, "12.0", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "marlin", Attention: "flash-attn-2"}},
		{"MI300X", CDNA3, "", Supports{FP8: true, BF16: true, FP8KV: true, Attention: "triton"}},
		{"MI250", CDNA2, "", Supports{BF16: true, Attention: "triton"}},
		// The compute capability decides over the generation.
		{"8.9 named Ampere", Ampere, "8.9", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "marlin", Attention: "flash-attn-2"}},
		// A generation without a compute capability.
		{"Hopper alone", Hopper, "", Supports{FP8: true, BF16: true, FP8KV: true, Int4: true, Int4Kernel: "machete", Attention: "flash-attn-3"}},
		{"Turing alone", Turing, "", Supports{Attention: "flashinfer"}},
		{"unknown", Unknown, "", Supports{}},
		{"Pascal", Unknown, "6.1", Supports{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, SupportsOf(tt.gen, tt.cc)); diff != "" {
				t.Errorf("SupportsOf(%q, %q) (-want +got):\n%s", tt.gen, tt.cc, diff)
			}
		})
	}
}

// TestModelSupports pins the brief's facts by model: FP8 from Ada on,
// BF16 from Ampere on, FlashAttention 3 only on Hopper.
func TestModelSupports(t *testing.T) {
	for _, m := range Models() {
		s := m.Supports()
		if m.Vendor != "nvidia" {
			continue
		}
		fp8 := m.Generation == Ada || m.Generation == Hopper || m.Generation == Blackwell
		bf16 := fp8 || m.Generation == Ampere
		if s.FP8 != fp8 || s.BF16 != bf16 || s.FP8KV != fp8 || s.Int4 != bf16 {
			t.Errorf("%s (%s): %+v", m.Name, m.Generation, s)
		}
		if (s.Attention == "flash-attn-3") != (m.Generation == Hopper) {
			t.Errorf("%s (%s): attention %s", m.Name, m.Generation, s.Attention)
		}
	}
}

func TestComputeFromName(t *testing.T) {
	tests := map[string]string{
		"Tesla V100-SXM2-32GB":       "7.0", // the catalog
		"Tesla V100-PCIE-32GB":       "7.0", // families from here on
		"Tesla V100S-PCIE-32GB":      "7.0",
		"NVIDIA A100-PCIE-40GB":      "8.0",
		"NVIDIA A30":                 "8.0",
		"NVIDIA RTX A6000":           "8.6",
		"NVIDIA GeForce RTX 3080 Ti": "8.6",
		"NVIDIA A16":                 "8.6",
		"NVIDIA GeForce RTX 2080":    "7.5",
		"Quadro RTX 8000":            "7.5",
		"NVIDIA H800":                "9.0",
		"NVIDIA GeForce GTX 1080":    "",
		"Tesla P100-PCIE-16GB":       "",
	}
	for name, want := range tests {
		if got := computeFromName(name); got != want {
			t.Errorf("computeFromName(%q) = %q, want %q", name, got, want)
		}
	}
}

package hardware

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteTextMixed: a machine of two generations says what each
// supports, labelled; one of unknown GPUs says so.
func TestWriteTextMixed(t *testing.T) {
	m := Machine{
		GPUs: []GPU{
			{Index: 0, Vendor: "nvidia", Name: "NVIDIA L4", MemoryTotal: 23034 * mib, MemoryFree: 22563 * mib, ComputeCapability: "8.9", Generation: Ada},
			{Index: 1, Vendor: "nvidia", Name: "Tesla T4", MemoryTotal: 15360 * mib, MemoryFree: 15101 * mib, ComputeCapability: "7.5", Generation: Turing},
			{Index: 2, Vendor: "nvidia", Name: "Tesla P4", MemoryTotal: 7680 * mib},
		},
		Driver: "550.90.07",
	}
	var b strings.Builder
	if err := WriteText(&b, m); err != nil {
		t.Fatal(err)
	}
	want := `GPU  NAME       MEMORY    FREE      COMPUTE  GENERATION
0    NVIDIA L4  22.5 GiB  22.0 GiB  8.9      Ada
1    Tesla T4   15.0 GiB  14.7 GiB  7.5      Turing
2    Tesla P4   7.5 GiB   0.0 GiB   -        -
interconnect: unknown
driver: 550.90.07
cuda: unknown
supports (Ada 8.9): fp8, bf16, fp8 kv cache, int4 (marlin)
lacks (Ada 8.9): none
attention (Ada 8.9): flash-attn-2
supports (Turing 7.5): none
lacks (Turing 7.5): fp8, bf16, fp8 kv cache, int4
attention (Turing 7.5): flashinfer
supports (-): none
lacks (-): fp8, bf16, fp8 kv cache, int4
attention (-): unknown
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

package plan

import (
	"github.com/omnigate/omnigate/internal/hardware"
)

// GPUSpec is one GPU model as the planner needs it.
type GPUSpec struct {
	Name string `json:"name"`
	// MemoryBytes is the memory the driver reports, which is what an
	// engine can use: an "80GB" H100 has 81,559 MiB.
	MemoryBytes       int64               `json:"memory_bytes"`
	Generation        hardware.Generation `json:"generation"`
	ComputeCapability string              `json:"compute_capability,omitempty"`
	// Link is how hosts with several of these usually connect them: SXM
	// boards over NVLink, PCIe cards over PCIe. --interconnect overrides it.
	Link hardware.Interconnect `json:"link"`
}

// Hardware is where the planner looks up GPU models and what they
// support.
type Hardware interface {
	Lookup(name string) (GPUSpec, bool)
	Supports(g GPUSpec) hardware.Supports
}

// Catalog is Hardware over internal/hardware's GPU catalog.
type Catalog struct{}

var _ Hardware = Catalog{}

const mib = 1 << 20

// driverMemory is what nvidia-smi reports as memory.total for catalog
// models whose driver-visible memory is below the marketed size the
// catalog holds: datacenter GDDR6 cards keep 1/16 for ECC, HBM parts hold
// back a little.
var driverMemory = map[string]int64{
	"H100-80GB": 81559 * mib,
	"H100-PCIE": 81559 * mib,
	"H200":      143771 * mib,
	"B200":      183359 * mib,
	"L4":        23034 * mib,
	"L40S":      46068 * mib,
	"A10":       23028 * mib,
	"A10G":      23028 * mib,
	"A40":       46068 * mib,
	"T4":        15360 * mib,
	"RTX-4090":  24564 * mib,
}

// Lookup finds a GPU model by the name an operator types or the driver
// reports ("H100-80GB", "NVIDIA H100 80GB HBM3").
func (Catalog) Lookup(name string) (GPUSpec, bool) {
	m, ok := hardware.Lookup(name)
	if !ok {
		return GPUSpec{}, false
	}
	mem := m.Memory
	if d, ok := driverMemory[m.Name]; ok {
		mem = d
	}
	return GPUSpec{Name: m.Name, MemoryBytes: mem, Generation: m.Generation, ComputeCapability: m.ComputeCapability, Link: m.Link}, true
}

// Supports is the catalog's per-generation answer.
func (Catalog) Supports(g GPUSpec) hardware.Supports {
	return hardware.SupportsOf(g.Generation, g.ComputeCapability)
}

// GPUNames lists the GPU models the catalog knows.
func GPUNames() []string {
	var names []string
	for _, m := range hardware.Models() {
		names = append(names, m.Name)
	}
	return names
}

// Detected is the planner's view of a machine detection found: its
// smallest GPU (all of them when they are alike), how many, and how they
// connect. It reports false for a machine without GPUs.
func Detected(m hardware.Machine, hw Hardware) (GPUSpec, int, hardware.Interconnect, bool) {
	if len(m.GPUs) == 0 {
		return GPUSpec{}, 0, hardware.None, false
	}
	g := m.GPUs[0]
	for _, x := range m.GPUs[1:] {
		if x.MemoryTotal < g.MemoryTotal {
			g = x
		}
	}
	spec, ok := hw.Lookup(g.Name)
	if !ok {
		spec = GPUSpec{Name: g.Name, Link: m.Interconnect}
	}
	spec.MemoryBytes = g.MemoryTotal
	if g.Generation != hardware.Unknown {
		spec.Generation, spec.ComputeCapability = g.Generation, g.ComputeCapability
	}
	return spec, len(m.GPUs), m.Interconnect, true
}

// plainInt4 says whether a generation without fast 4-bit kernels still
// runs d through the engines' slower plain kernels: AWQ's need Turing,
// GPTQ's run on Volta too; ROCm has both.
func plainInt4(g hardware.Generation, d DType) bool {
	switch g {
	case hardware.Turing, hardware.CDNA2, hardware.CDNA3:
		return true
	case hardware.Volta:
		return d == GPTQ
	}
	return false
}

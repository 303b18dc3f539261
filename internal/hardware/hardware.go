// Package hardware describes the GPUs a machine has (detected, or named
// by the operator) and what each generation supports, for the planner
// and the admin API.
package hardware

// Generation is a GPU architecture generation: what its kernels and
// number formats can do follows from it.
type Generation string

// The generations the planner knows.
const (
	Volta     Generation = "Volta"     // V100: compute capability 7.0
	Turing    Generation = "Turing"    // T4: 7.5
	Ampere    Generation = "Ampere"    // A100, A10, A40: 8.0, 8.6
	Ada       Generation = "Ada"       // L4, L40S, RTX 4090: 8.9
	Hopper    Generation = "Hopper"    // H100, H200: 9.0
	Blackwell Generation = "Blackwell" // B200, RTX 5090: 10.0, 12.0
	CDNA2     Generation = "CDNA2"     // AMD MI250
	CDNA3     Generation = "CDNA3"     // AMD MI300X
	Unknown   Generation = ""
)

// GPU is one device.
type GPU struct {
	Index  int    `json:"index"`
	Vendor string `json:"vendor"` // nvidia or amd
	Name   string `json:"name"`   // as the driver reports it: "NVIDIA H100 80GB HBM3"
	UUID   string `json:"uuid,omitempty"`
	// MemoryTotal and MemoryFree are bytes.
	MemoryTotal int64 `json:"memory_total_bytes"`
	MemoryFree  int64 `json:"memory_free_bytes"`
	// ComputeCapability is NVIDIA's "major.minor" ("9.0"); "" for AMD.
	ComputeCapability string     `json:"compute_capability,omitempty"`
	Generation        Generation `json:"generation"`
}

// Interconnect is how a machine's GPUs talk to each other.
type Interconnect string

// Interconnects.
const (
	NVLink Interconnect = "nvlink" // every pair over NVLink (or NVSwitch)
	PCIe   Interconnect = "pcie"   // some pair only over PCIe / the host bridge
	None   Interconnect = ""       // one GPU, or none
)

// Machine is what one host has.
type Machine struct {
	GPUs         []GPU        `json:"gpus"`
	Interconnect Interconnect `json:"interconnect,omitempty"`
	// Links are the kinds of path nvidia-smi topo -m shows between GPU
	// pairs, fastest first: "NV18", or "PHB" and "SYS" (SYS crosses
	// between CPU sockets).
	Links  []string `json:"links,omitempty"`
	Driver string   `json:"driver,omitempty"` // driver version
	CUDA   string   `json:"cuda,omitempty"`   // CUDA version the driver supports
	Source string   `json:"source,omitempty"` // how it was found: nvidia-smi, rocm-smi, flags
	// Reason says why no GPU was found; "" when some were.
	Reason string `json:"reason,omitempty"`
	// Notes are what detection could not learn or had to infer.
	Notes []string `json:"notes,omitempty"`
}

package hardware

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The --query-gpu fields, with and without compute_cap: drivers before
// R510 do not know compute_cap and reject the whole query.
const (
	nvidiaFields      = "index,name,uuid,memory.total,memory.free,compute_cap,driver_version"
	nvidiaFieldsNoCap = "index,name,uuid,memory.total,memory.free,driver_version"
	nvidiaFormat      = "--format=csv,noheader,nounits"
)

// What nvidia-smi prints when it cannot help.
const (
	nvidiaNoDevices = "No devices were found"
	nvidiaFailed    = "NVIDIA-SMI has failed"
	nvidiaBadField  = "is not a valid field to query"
)

const mib = 1 << 20

// detectNVIDIA asks nvidia-smi. Without GPUs it returns why.
func detectNVIDIA(ctx context.Context, run Runner) (Machine, string) {
	out, err := run(ctx, "nvidia-smi", "--query-gpu="+nvidiaFields, nvidiaFormat)
	if notFound(err) {
		return Machine{}, "nvidia-smi is not on PATH"
	}
	withCap := true
	if said(out, err, nvidiaBadField) {
		withCap = false
		out, err = run(ctx, "nvidia-smi", "--query-gpu="+nvidiaFieldsNoCap, nvidiaFormat)
	}
	if err != nil || said(out, nil, nvidiaNoDevices) || said(out, nil, nvidiaFailed) {
		return Machine{}, "nvidia-smi: " + failure(out, err)
	}
	gpus, driver, err := parseNVIDIAQuery(out, withCap)
	if err != nil {
		return Machine{}, "nvidia-smi --query-gpu: " + err.Error()
	}
	if len(gpus) == 0 {
		return Machine{}, "nvidia-smi lists no GPU"
	}
	m := Machine{GPUs: gpus, Driver: driver, Source: "nvidia-smi"}
	if !withCap {
		m.Notes = append(m.Notes, "this nvidia-smi does not report compute_cap: compute capability from the GPU's name")
	}
	for i := range m.GPUs {
		g := &m.GPUs[i]
		if g.ComputeCapability == "" {
			g.ComputeCapability = computeFromName(g.Name)
		}
		g.Generation = GenerationOf(g.ComputeCapability)
		if g.Generation == Unknown {
			m.Notes = append(m.Notes, fmt.Sprintf("GPU %d (%s): generation unknown", g.Index, g.Name))
		}
	}
	if cuda, note := nvidiaCUDA(ctx, run); note != "" {
		m.Notes = append(m.Notes, note)
	} else {
		m.CUDA = cuda
	}
	if len(m.GPUs) > 1 {
		out, err := run(ctx, "nvidia-smi", "topo", "-m")
		if err != nil {
			m.Notes = append(m.Notes, "interconnect unknown: nvidia-smi topo -m: "+failure(out, err))
		} else if ic, links, err := parseTopology(out, len(m.GPUs)); err != nil {
			m.Notes = append(m.Notes, "interconnect unknown: nvidia-smi topo -m: "+err.Error())
		} else {
			m.Interconnect, m.Links = ic, links
		}
	}
	return m, ""
}

// said reports whether a command's output or error contains msg.
func said(out []byte, err error, msg string) bool {
	return bytes.Contains(out, []byte(msg)) || (err != nil && strings.Contains(err.Error(), msg))
}

// parseNVIDIAQuery reads the --query-gpu CSV (no header, no units:
// memory in MiB). withCap says whether compute_cap is among the fields.
func parseNVIDIAQuery(out []byte, withCap bool) ([]GPU, string, error) {
	want := 7
	if !withCap {
		want = 6
	}
	var gpus []GPU
	driver := ""
	n := 0
	for line := range strings.Lines(string(out)) {
		n++
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != want {
			return nil, "", fmt.Errorf("line %d: %d fields, want %d: %q", n, len(f), want, line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, "", fmt.Errorf("line %d: index %q is not a number", n, f[0])
		}
		g := GPU{Index: idx, Vendor: "nvidia", Name: f[1], UUID: value(f[2])}
		g.MemoryTotal = mebibytes(f[3])
		g.MemoryFree = mebibytes(f[4])
		if withCap {
			if _, _, ok := parseCompute(f[5]); ok {
				g.ComputeCapability = f[5]
			}
		}
		if driver == "" {
			driver = value(f[len(f)-1])
		}
		gpus = append(gpus, g)
	}
	return gpus, driver, nil
}

// value is a CSV field, or "" for nvidia-smi's "[N/A]" and "[Not
// Supported]".
func value(s string) string {
	if strings.HasPrefix(s, "[") {
		return ""
	}
	return s
}

// mebibytes is a MiB field in bytes; 0 when nvidia-smi has no number.
func mebibytes(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n * mib
}

// cudaVersionRE finds the CUDA version in nvidia-smi's header
// ("CUDA Version: 12.4") and in nvidia-smi -q ("CUDA Version : 12.4").
var cudaVersionRE = regexp.MustCompile(`CUDA Version\s*:\s*([0-9]+\.[0-9]+)`)

// nvidiaCUDA is the CUDA version the driver supports, from plain
// nvidia-smi, else nvidia-smi -q; or a note saying why it is unknown.
func nvidiaCUDA(ctx context.Context, run Runner) (string, string) {
	why := ""
	for _, args := range [][]string{nil, {"-q"}} {
		out, err := run(ctx, "nvidia-smi", args...)
		if m := cudaVersionRE.FindSubmatch(out); m != nil {
			return string(m[1]), ""
		}
		if why == "" {
			if err != nil {
				why = failure(out, err)
			} else {
				why = "no CUDA Version in its output"
			}
		}
	}
	return "", "CUDA version unknown: nvidia-smi: " + why
}

var (
	ansiRE   = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	gpuRE    = regexp.MustCompile(`^GPU[0-9]+$`)
	nvlinkRE = regexp.MustCompile(`^NV([0-9]+)$`)
)

// pcieRank orders the PCIe path kinds of nvidia-smi topo -m from the
// shortest: PIX, one bridge; PXB, several; PHB, the host bridge; NODE,
// between host bridges of one NUMA node; SYS, across sockets (SOC in
// old drivers).
var pcieRank = map[string]int{"PIX": 1, "PXB": 2, "PHB": 3, "NODE": 4, "SYS": 5, "SOC": 5}

// parseTopology reads the GPU-to-GPU block of nvidia-smi topo -m: NVLink
// when every pair shows NV#, else PCIe. links are the kinds seen,
// fastest first. n is the number of GPUs --query-gpu listed.
func parseTopology(out []byte, n int) (Interconnect, []string, error) {
	text := ansiRE.ReplaceAllString(string(out), "")
	cols := 0 // GPU columns in the header
	rows := map[int][]string{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "Legend:" {
			break
		}
		if cols == 0 {
			for cols < len(f) && gpuRE.MatchString(f[cols]) {
				cols++
			}
			continue
		}
		if !gpuRE.MatchString(f[0]) {
			continue // a NIC's row
		}
		i, _ := strconv.Atoi(f[0][3:])
		if len(f) < cols+1 {
			return None, nil, fmt.Errorf("row %s has %d columns, want %d", f[0], len(f)-1, cols)
		}
		rows[i] = f[1 : cols+1]
	}
	if cols != n || len(rows) != n {
		return None, nil, fmt.Errorf("shows %d GPU columns and %d rows; --query-gpu listed %d GPUs", cols, len(rows), n)
	}
	seen := map[string]bool{}
	nvlinkAll := true
	for i := range n {
		row, ok := rows[i]
		if !ok {
			return None, nil, fmt.Errorf("no row GPU%d", i)
		}
		for j, cell := range row {
			if j == i {
				continue
			}
			switch {
			case nvlinkRE.MatchString(cell):
			case pcieRank[cell] > 0:
				nvlinkAll = false
			default:
				return None, nil, fmt.Errorf("GPU%d to GPU%d is %q", i, j, cell)
			}
			seen[cell] = true
		}
	}
	links := make([]string, 0, len(seen))
	for k := range seen {
		links = append(links, k)
	}
	slices.SortFunc(links, func(a, b string) int { return linkRank(a) - linkRank(b) })
	if nvlinkAll {
		return NVLink, links, nil
	}
	return PCIe, links, nil
}

// linkRank orders link kinds fastest first: more bonded NVLinks first,
// then PCIe paths from the shortest.
func linkRank(s string) int {
	if m := nvlinkRE.FindStringSubmatch(s); m != nil {
		k, _ := strconv.Atoi(m[1])
		return -k
	}
	return pcieRank[s]
}

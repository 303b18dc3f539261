package plan

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/omnigate/omnigate/internal/hardware"
)

// Inventory is a fleet as omnigate plan --fleet reads it: machines and
// their GPUs, and the two tiers to place on them.
type Inventory struct {
	Machines []Machine `yaml:"machines"`
	// Small and Large are the tiers' public names; default qwen3-omni-7b
	// and qwen3-omni-30b.
	Small string `yaml:"small"`
	Large string `yaml:"large"`
	// Engine serves every replica: vllm (the default) or sglang.
	Engine string `yaml:"engine"`
	// Port is the first engine port of each machine; a machine with
	// several replicas uses the next ones. Default 8000.
	Port int `yaml:"port"`
	// Talker loads the talker and vocoder, to answer in speech
	// (vllm-omni, SGLang-Omni). Default false: text out.
	Talker bool `yaml:"talker"`
	// SmallTP and LargeTP force a tier's tensor-parallel size (fewer,
	// bigger replicas: more KV cache each); 0: the smallest that fits.
	SmallTP int `yaml:"small_tp"`
	LargeTP int `yaml:"large_tp"`
}

// Machine is one host.
type Machine struct {
	Name string `yaml:"name"`
	// Address is the host the gateway reaches its engines at; default Name.
	Address string `yaml:"address"`
	GPU     string `yaml:"gpu"` // a GPU model: H100-80GB, L4…
	Count   int    `yaml:"count"`
	// Interconnect is nvlink or pcie; default the GPU model's usual.
	Interconnect string `yaml:"interconnect"`
}

// MinFleetContext is the shortest context a replica of a fleet plan is
// left with 16-bit weights before fp8 weights are tried for it.
const MinFleetContext = 16384

// Replica is one engine process the fleet plan places.
type Replica struct {
	Machine string `json:"machine"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Tier    string `json:"tier"`  // "small" or "large"
	Model   string `json:"model"` // the tier's public name
	// GPUs are the device indexes it runs on (CUDA_VISIBLE_DEVICES).
	GPUs []int `json:"gpus"`
	Plan *Plan `json:"plan"`
}

// FleetPlan is where every tier runs.
type FleetPlan struct {
	Small, Large string
	Replicas     []Replica
	// Idle lists machines (or their GPUs) that serve nothing, and why.
	Idle []string
	// Notes say what the plan could not do as the rule asks.
	Notes []string
}

// PlanFleet places the tiers on inv's machines the way the small/large
// rule does (a machine too small for the large tier serves the small
// one), but from the computed fit instead of a fixed memory line: each
// machine serves as many large replicas as its GPUs hold at the smallest
// tensor-parallel size that fits, and its GPUs left over serve small
// replicas. When no machine is left for the small tier, one large
// replica's GPUs (on the machine with the least memory per GPU that has
// more than one) serve it instead, so both tiers exist.
func PlanFleet(inv Inventory, hw Hardware) (*FleetPlan, error) {
	if len(inv.Machines) == 0 {
		return nil, fmt.Errorf("%w: the inventory lists no machines", ErrRequest)
	}
	small, large := cmpOr(inv.Small, "qwen3-omni-7b"), cmpOr(inv.Large, "qwen3-omni-30b")
	sm, err := Lookup(small)
	if err != nil {
		return nil, err
	}
	lm, err := Lookup(large)
	if err != nil {
		return nil, err
	}
	engine, err := ParseEngine(cmpOr(inv.Engine, "vllm"))
	if err != nil {
		return nil, err
	}
	if engine == Transformers {
		return nil, fmt.Errorf("%w: a fleet is served by vllm or sglang, not transformers", ErrRequest)
	}
	port := inv.Port
	if port == 0 {
		port = 8000
	}
	fp := &FleetPlan{Small: small, Large: large}
	type placed struct {
		machine    Machine
		gpu        GPUSpec
		largeTP    int // 0: the large tier does not fit
		smallTP    int // 0: the small tier does not fit
		largePlan  *Plan
		smallPlan  *Plan
		nLarge     int
		nSmall     int
		leftover   int
		memPerGPU  int64
		index      int
		machineErr string
	}
	var ps []*placed
	seen := map[string]bool{}
	for i, m := range inv.Machines {
		if m.Name == "" {
			return nil, fmt.Errorf("%w: machines[%d] has no name", ErrRequest, i)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("%w: machines[%d]: %q names two machines", ErrRequest, i, m.Name)
		}
		seen[m.Name] = true
		g, ok := hw.Lookup(m.GPU)
		if !ok {
			return nil, fmt.Errorf("%w: machines[%d] (%s): unknown GPU %q (%s)", ErrRequest, i, m.Name, m.GPU, strings.Join(GPUNames(), ", "))
		}
		if m.Count < 1 {
			return nil, fmt.Errorf("%w: machines[%d] (%s): count must be >= 1, got %d", ErrRequest, i, m.Name, m.Count)
		}
		link := hardware.Interconnect(m.Interconnect)
		if link != hardware.None && link != hardware.NVLink && link != hardware.PCIe {
			return nil, fmt.Errorf("%w: machines[%d] (%s): interconnect %q is not nvlink or pcie", ErrRequest, i, m.Name, m.Interconnect)
		}
		p := &placed{machine: m, gpu: g, memPerGPU: g.MemoryBytes, index: i}
		try := func(model *Model, tp int) *Plan {
			if tp > m.Count {
				return nil
			}
			ask := func(d DType) *Plan {
				pl, err := Make(Request{Model: model, GPU: g, Count: m.Count, Interconnect: link, Engine: engine,
					DType: d, KVDType: KVAuto, Talker: inv.Talker, TP: tp}, hw)
				if err != nil || !pl.Fits || pl.PP > 1 {
					return nil
				}
				return pl
			}
			pl := ask(DTypeAuto)
			// 16-bit weights that leave a replica too short a context: fp8
			// weights, where the GPU has them, leave it more KV cache.
			if pl != nil && pl.MaxModelLen < MinFleetContext && pl.DType != FP8 {
				if f := ask(FP8); f != nil && f.MaxModelLen > pl.MaxModelLen {
					pl = f
				}
			}
			return pl
		}
		if p.largePlan = try(lm, inv.LargeTP); p.largePlan != nil {
			p.largeTP = p.largePlan.TP
		}
		if p.smallPlan = try(sm, inv.SmallTP); p.smallPlan != nil {
			p.smallTP = p.smallPlan.TP
		}
		switch {
		case p.largeTP > 0:
			p.nLarge = m.Count / p.largeTP
			p.leftover = m.Count - p.nLarge*p.largeTP
		case p.smallTP > 0:
			p.leftover = m.Count
		default:
			p.machineErr = fmt.Sprintf("%s: %d× %s fits neither %s nor %s", m.Name, m.Count, g.Name, large, small)
		}
		if p.smallTP > 0 {
			p.nSmall = p.leftover / p.smallTP
			p.leftover -= p.nSmall * p.smallTP
		}
		ps = append(ps, p)
	}
	totalSmall := 0
	for _, p := range ps {
		totalSmall += p.nSmall
	}
	if totalSmall == 0 {
		// Give the small tier one large replica's GPUs: on the machine
		// with the least memory per GPU that keeps a large replica.
		var donor *placed
		for _, p := range ps {
			if p.nLarge > 1 && p.smallTP > 0 && (donor == nil || p.memPerGPU < donor.memPerGPU) {
				donor = p
			}
		}
		if donor == nil { // no machine has two: take a whole machine, if another keeps the large tier
			largeMachines := 0
			for _, p := range ps {
				if p.nLarge > 0 {
					largeMachines++
				}
			}
			for _, p := range ps {
				if largeMachines > 1 && p.nLarge > 0 && p.smallTP > 0 && (donor == nil || p.memPerGPU < donor.memPerGPU) {
					donor = p
				}
			}
		}
		if donor != nil {
			donor.nLarge--
			freed := donor.largeTP + donor.leftover
			donor.nSmall = freed / donor.smallTP
			donor.leftover = freed - donor.nSmall*donor.smallTP
			fp.Notes = append(fp.Notes, fmt.Sprintf("every machine fits %s: %s gives %d GPUs of it to %s, so both tiers run", large, donor.machine.Name, donor.largeTP, small))
		} else {
			fp.Notes = append(fp.Notes, fmt.Sprintf("no GPUs are left for %s: every machine is needed for %s (the gateway config has only it)", small, large))
		}
	}
	for _, p := range ps {
		if p.machineErr != "" {
			fp.Idle = append(fp.Idle, p.machineErr)
			continue
		}
		gpu, n := 0, 0
		add := func(tier, model string, tp int, pl *Plan) {
			r := Replica{Machine: p.machine.Name, Address: cmpOr(p.machine.Address, p.machine.Name), Port: port + n, Tier: tier, Model: model, Plan: pl}
			for range tp {
				r.GPUs = append(r.GPUs, gpu)
				gpu++
			}
			n++
			fp.Replicas = append(fp.Replicas, r)
		}
		for range p.nLarge {
			add("large", large, p.largeTP, p.largePlan)
		}
		for range p.nSmall {
			add("small", small, p.smallTP, p.smallPlan)
		}
		if p.leftover > 0 {
			fp.Idle = append(fp.Idle, fmt.Sprintf("%s: %d of its %d GPUs are left over", p.machine.Name, p.leftover, p.machine.Count))
		}
	}
	if !slices.ContainsFunc(fp.Replicas, func(r Replica) bool { return r.Tier == "large" }) {
		fp.Notes = append(fp.Notes, fmt.Sprintf("no machine fits %s, in any format: the fleet serves %s only", large, small))
	}
	if len(fp.Replicas) == 0 {
		return fp, fmt.Errorf("%w: no machine of the inventory fits %s or %s", ErrRequest, large, small)
	}
	return fp, nil
}

// Command is the replica's engine command, with its GPUs and port.
func (r Replica) Command() string {
	gpus := make([]string, len(r.GPUs))
	for i, g := range r.GPUs {
		gpus[i] = fmt.Sprint(g)
	}
	flag := " --port "
	if r.Plan.Engine == SGLang {
		flag = " --host 0.0.0.0 --port "
	}
	return "CUDA_VISIBLE_DEVICES=" + strings.Join(gpus, ",") + " " + r.Plan.Command + flag + fmt.Sprint(r.Port)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// quantizationLabel is a plan's weight format as deployments[].quantization
// names it.
func quantizationLabel(d DType) string {
	switch d {
	case AWQ:
		return "awq-int4"
	case GPTQ:
		return "gptq-int4"
	}
	return string(d)
}

// dialect is the gateway dialect of the engine.
func dialect(e Engine) string {
	if e == SGLang {
		return "sglang"
	}
	return "vllm"
}

// WriteConfig writes the gateway configuration of fp: each tier a model
// (named, aliased small and large, its tier), each replica a deployment
// with its address, checkpoint, batch limit, format and hardware, and
// the large tier falling back to the small one.
func (fp *FleetPlan) WriteConfig(w io.Writer, talker bool) error {
	var b strings.Builder
	b.WriteString("# The gateway configuration of the fleet, written by omnigate plan --fleet.\n")
	b.WriteString("# Each deployment is one engine process; its command is in the plan's output.\n")
	b.WriteString("models:\n")
	out := "[text]"
	if talker {
		out = "[text, audio]"
	}
	tiers := []struct{ tier, name string }{{"small", fp.Small}, {"large", fp.Large}}
	has := map[string]bool{}
	for _, t := range tiers {
		var rs []Replica
		for _, r := range fp.Replicas {
			if r.Tier == t.tier {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		has[t.tier] = true
		fmt.Fprintf(&b, "  - name: %s\n    aliases: [%s]\n    tier: %s\n", t.name, t.tier, t.tier)
		fmt.Fprintf(&b, "    context_window: %d\n", minContext(rs))
		fmt.Fprintf(&b, "    capabilities: {input: [text, image, audio, video], output: %s}\n", out)
		b.WriteString("    deployments:\n")
		for _, r := range rs {
			p := r.Plan
			fmt.Fprintf(&b, "      - name: %s-%d\n        kind: openai\n        url: http://%s:%d/v1\n", r.Machine, r.Port, r.Address, r.Port)
			fmt.Fprintf(&b, "        upstream_model: %s\n        dialect: %s\n        max_num_seqs: %d\n", p.Checkpoint, dialect(p.Engine), p.MaxNumSeqs)
			fmt.Fprintf(&b, "        quantization: %s\n        hardware: {gpu: %s, count: %d}\n", quantizationLabel(p.DType), p.GPU.Name, len(r.GPUs))
			if talker {
				b.WriteString("        audio_output: true\n")
			}
		}
	}
	if has["small"] && has["large"] {
		fmt.Fprintf(&b, "routing:\n  fallbacks:\n    %s: [{model: %s}]\n", fp.Large, fp.Small)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// minContext is the shortest max_model_len of rs: what every replica of
// the tier serves.
func minContext(rs []Replica) int {
	n := rs[0].Plan.MaxModelLen
	for _, r := range rs[1:] {
		n = min(n, r.Plan.MaxModelLen)
	}
	return n
}

// WriteText writes the fleet plan: a line per replica, the engine
// commands by machine, what is left idle and the notes.
func (fp *FleetPlan) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tGPUS\tTIER\tMODEL\tFORMAT\tTP\tCONTEXT\tSEQS\tKV TOKENS")
	for _, r := range fp.Replicas {
		p := r.Plan
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Machine, gpuList(r), r.Tier, r.Model,
			weightsAndKV(p), p.TP, p.MaxModelLen, p.MaxNumSeqs, thousands(p.KVCacheTokens))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	machine := ""
	for _, r := range fp.Replicas {
		if r.Machine != machine {
			machine = r.Machine
			fmt.Fprintf(w, "\non %s:\n", machine)
		}
		fmt.Fprintf(w, "  %s\n", r.Command())
	}
	for _, s := range fp.Idle {
		fmt.Fprintf(w, "\nidle: %s", s)
	}
	if len(fp.Idle) > 0 {
		fmt.Fprintln(w)
	}
	for _, s := range fp.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", s)
	}
	return nil
}

func gpuList(r Replica) string {
	s := make([]string, len(r.GPUs))
	for i, g := range r.GPUs {
		s[i] = fmt.Sprint(g)
	}
	return r.Plan.GPU.Name + " " + strings.Join(s, ",")
}

func weightsAndKV(p *Plan) string {
	if p.KVDType == KVFP8 {
		return string(p.DType) + "/fp8 KV"
	}
	return string(p.DType)
}

// thousands writes n with commas: 2,205,508.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

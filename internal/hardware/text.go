package hardware

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText describes m for a person: a line per GPU (index, name,
// memory total and free in GiB, compute capability, generation), then
// the interconnect, driver and CUDA versions, what each generation
// supports and lacks and the attention backend vLLM picks on it, and the
// notes. Without GPUs it is one line, "no GPU found:
// " and the reason.
func WriteText(w io.Writer, m Machine) error {
	if len(m.GPUs) == 0 {
		reason := m.Reason
		if reason == "" {
			reason = "none listed"
		}
		_, err := fmt.Fprintf(w, "no GPU found: %s\n", reason)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GPU\tNAME\tMEMORY\tFREE\tCOMPUTE\tGENERATION")
	for _, g := range m.GPUs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", g.Index, g.Name, gibibytes(g.MemoryTotal), gibibytes(g.MemoryFree),
			orDash(g.ComputeCapability), orDash(string(g.Generation)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	switch {
	case m.Interconnect != None:
		fmt.Fprintf(&b, "interconnect: %s", m.Interconnect)
		if len(m.Links) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(m.Links, ", "))
		}
		b.WriteByte('\n')
	case len(m.GPUs) == 1:
		b.WriteString("interconnect: none (one GPU)\n")
	default:
		b.WriteString("interconnect: unknown\n")
	}
	fmt.Fprintf(&b, "driver: %s\n", orUnknown(m.Driver))
	if m.GPUs[0].Vendor == "nvidia" {
		fmt.Fprintf(&b, "cuda: %s\n", orUnknown(m.CUDA))
	}
	seen := map[string]bool{}
	var kinds []GPU
	for _, g := range m.GPUs {
		k := string(g.Generation) + " " + g.ComputeCapability
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, g)
		}
	}
	for _, g := range kinds {
		label := ""
		if len(kinds) > 1 {
			label = " (" + orDash(strings.TrimSpace(string(g.Generation)+" "+g.ComputeCapability)) + ")"
		}
		yes, no := formats(g.Supports())
		fmt.Fprintf(&b, "supports%s: %s\n", label, orNone(yes))
		fmt.Fprintf(&b, "lacks%s: %s\n", label, orNone(no))
		fmt.Fprintf(&b, "attention%s: %s\n", label, orUnknown(g.Supports().Attention))
	}
	if m.Source != "" {
		fmt.Fprintf(&b, "source: %s\n", m.Source)
	}
	for _, n := range m.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCatalog lists the catalog's models, one a line, with what each
// supports.
func WriteCatalog(w io.Writer) error {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "-"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMEMORY\tGENERATION\tCOMPUTE\tFORM\tLINK\tFP8\tBF16\tFP8 KV\tINT4\tATTENTION")
	for _, m := range models {
		s := m.Supports()
		int4 := yes(s.Int4)
		if s.Int4Kernel != "" {
			int4 = s.Int4Kernel
		}
		fmt.Fprintf(tw, "%s\t%d GiB\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Memory/gib, m.Generation,
			orDash(m.ComputeCapability), m.FormFactor, m.Link, yes(s.FP8), yes(s.BF16), yes(s.FP8KV), int4, s.Attention)
	}
	return tw.Flush()
}

// formats splits what s says into what is supported and what is not:
// "bf16, int4 (marlin)" and "fp8, fp8 kv cache".
func formats(s Supports) (yes, no string) {
	var y, n []string
	add := func(ok bool, name string) {
		if ok {
			y = append(y, name)
		} else {
			n = append(n, name)
		}
	}
	add(s.FP8, "fp8")
	add(s.BF16, "bf16")
	add(s.FP8KV, "fp8 kv cache")
	int4 := "int4"
	if s.Int4Kernel != "" {
		int4 += " (" + s.Int4Kernel + ")"
	}
	add(s.Int4, int4)
	return strings.Join(y, ", "), strings.Join(n, ", ")
}

// gibibytes is n bytes in GiB to one decimal.
func gibibytes(n int64) string {
	return fmt.Sprintf("%.1f GiB", float64(n)/gib)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

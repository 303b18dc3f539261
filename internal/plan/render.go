package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes p for a person: the verdict, the request, one GPU's
// memory, the sizes tried, why, what next, and the command.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	link := ""
	if p.Interconnect != "" {
		link = ", " + string(p.Interconnect)
	}
	fmt.Fprintf(&b, "%s on %d× %s (%s, %s%s), engine %s\n\n", p.Model, p.Count, p.GPU.Name,
		GiB(p.GPU.MemoryBytes), genName(p.GPU.Generation), link, p.Engine)

	verdict := "fits"
	if !p.Fits {
		verdict = "does not fit"
	}
	layout := fmt.Sprintf("tensor parallel %d", p.TP)
	if p.Engine == Transformers {
		layout = fmt.Sprintf("%d GPU(s) with device_map=\"auto\"", p.PP)
	}
	fmt.Fprintf(&b, "%s: %s, %s weights, %s KV cache\n", verdict, layout, p.DType, p.KVDType)
	if p.Engine == Transformers {
		fmt.Fprintf(&b, "min GPU memory: %s in all (one GPU that large, or several with device_map=\"auto\")\n\n", GiB(p.MinGPUMemoryBytes))
	} else {
		fmt.Fprintf(&b, "min GPU memory: %s per GPU at tensor parallel %d\n\n", GiB(p.MinGPUMemoryBytes), p.TP)
	}

	t := p.Tokens
	parts := []string{fmt.Sprintf("text %s", commas(int64(t.Text)))}
	for _, x := range []struct {
		name string
		n    int
	}{{"video", t.Video}, {"video audio", t.VideoAudio}, {"audio", t.Audio}, {"images", t.Image}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", x.name, commas(int64(x.n))))
		}
	}
	fmt.Fprintf(&b, "request: %s tokens (%s)\n", commas(int64(t.Total())), strings.Join(parts, ", "))
	loaded := fmt.Sprintf("text %s (%s active)", billions(p.Params.Text), billions(p.Params.Active))
	if p.Params.Encoders > 0 {
		loaded += ", encoders " + billions(p.Params.Encoders)
	}
	if p.Params.Talker > 0 {
		loaded += fmt.Sprintf(", talker and vocoder %s", billions(p.Params.Talker))
	}
	fmt.Fprintf(&b, "loaded:  %s parameters\n\n", loaded)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	g := p.PerGPU
	if p.Engine == Transformers {
		fmt.Fprintf(&b, "memory (all GPUs together: %s)\n", GiB(g.Budget))
		fmt.Fprintf(tw, "  weights\t%s\t\n", GiB(g.Weights))
		fmt.Fprintf(tw, "  activations\t%s\t\n", GiB(g.Activations))
		fmt.Fprintf(tw, "  overhead\t%s\t\n", GiB(g.Overhead))
		fmt.Fprintf(tw, "  peak\t%s\t\n", GiB(g.Weights+g.Activations+g.Overhead))
		fmt.Fprintf(tw, "  free\t%s\t\n", GiB(g.KVCache))
		tw.Flush()
		fmt.Fprintf(&b, "longest prompt: %s tokens\n", commas(int64(p.MaxModelLen)))
	} else {
		fmt.Fprintf(&b, "per GPU (%s × %g = %s)\n", GiB(p.GPU.MemoryBytes), p.Utilization, GiB(g.Budget))
		fmt.Fprintf(tw, "  weights\t%s\t\n", GiB(g.Weights))
		fmt.Fprintf(tw, "  activations\t%s\t\n", GiB(g.Activations))
		fmt.Fprintf(tw, "  overhead\t%s\t\n", GiB(g.Overhead))
		fmt.Fprintf(tw, "  KV cache\t%s\t  %s tokens at %s B\n", GiB(g.KVCache), commas(p.KVCacheTokens), commas(int64(p.KVBytesPerToken)))
		tw.Flush()
		fmt.Fprintf(&b, "max_model_len %s; %.2f sequences at that length; max_num_seqs %d\n",
			commas(int64(p.MaxModelLen)), p.MaxConcurrency, p.MaxNumSeqs)
		if len(p.Options) > 1 {
			b.WriteString("\ntensor parallel sizes\n")
			tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "  tp\tweights/GPU\tKV tokens\tmax_model_len\tsequences\t\n")
			for _, o := range p.Options {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%.2f\t", o.TP, GiB(o.WeightsPerGPU), commas(o.KVCacheTokens), commas(int64(o.MaxModelLen)), o.MaxConcurrency)
				if o.Note != "" {
					fmt.Fprintf(tw, "  %s", o.Note)
				}
				fmt.Fprintln(tw)
			}
			tw.Flush()
		}
	}
	b.WriteString("\nwhy\n")
	for _, s := range p.Why {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	if len(p.Advice) > 0 {
		b.WriteString("\nadvice\n")
		for _, s := range p.Advice {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
	}
	if p.Command != "" {
		fmt.Fprintf(&b, "\ncommand\n  %s\n", p.Command)
	} else {
		b.WriteString("\ncommand\n  none: it does not fit\n")
	}
	if p.PipelineCommand != "" {
		fmt.Fprintf(&b, "\npipeline-parallel alternative (for PCIe)\n  %s\n", p.PipelineCommand)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package hardware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// detectAMD asks rocm-smi. Without GPUs it returns why.
func detectAMD(ctx context.Context, run Runner) (Machine, string) {
	out, err := run(ctx, "rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json")
	if notFound(err) {
		return Machine{}, "rocm-smi is not on PATH"
	}
	// rocm-smi may print warnings before its JSON, and exits non-zero
	// when one of several queries fails; the JSON is what counts.
	start := bytes.IndexByte(out, '{')
	if start < 0 {
		return Machine{}, "rocm-smi: " + failure(out, err)
	}
	gpus, err := parseROCm(out[start:])
	if err != nil {
		return Machine{}, "rocm-smi: " + err.Error()
	}
	if len(gpus) == 0 {
		return Machine{}, "rocm-smi lists no GPU"
	}
	m := Machine{GPUs: gpus, Source: "rocm-smi",
		Notes: []string{"interconnect and driver version not read from rocm-smi"}}
	for _, g := range m.GPUs {
		if g.Generation == Unknown {
			m.Notes = append(m.Notes, fmt.Sprintf("GPU %d (%s): generation unknown", g.Index, g.Name))
		}
	}
	return m, ""
}

// parseROCm reads rocm-smi's JSON: an object per "cardN" of string
// fields, and maybe a "system" object.
func parseROCm(b []byte) ([]GPU, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("--json output: %w", err)
	}
	var gpus []GPU
	for k, raw := range top {
		idx, err := strconv.Atoi(strings.TrimPrefix(k, "card"))
		if !strings.HasPrefix(k, "card") || err != nil {
			continue
		}
		var card map[string]any
		if err := json.Unmarshal(raw, &card); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		field := func(names ...string) string {
			for _, n := range names {
				for ck, v := range card {
					if strings.EqualFold(ck, n) {
						return strings.TrimSpace(fmt.Sprint(v))
					}
				}
			}
			return ""
		}
		g := GPU{Index: idx, Vendor: "amd", Name: field("Card Series", "Card SKU", "Card Model")}
		total, _ := strconv.ParseInt(field("VRAM Total Memory (B)"), 10, 64)
		used, _ := strconv.ParseInt(field("VRAM Total Used Memory (B)"), 10, 64)
		g.MemoryTotal = total
		if total >= used {
			g.MemoryFree = total - used
		}
		if md, ok := Lookup(g.Name); ok {
			g.Generation = md.Generation
		} else {
			g.Generation = generationOfGFX(field("GFX Version"))
		}
		gpus = append(gpus, g)
	}
	slices.SortFunc(gpus, func(a, b GPU) int { return a.Index - b.Index })
	return gpus, nil
}

// generationOfGFX is the generation of an AMD GFX target: gfx90a is
// CDNA2 (MI200), gfx940 to gfx942 are CDNA3 (MI300).
func generationOfGFX(gfx string) Generation {
	switch strings.ToLower(gfx) {
	case "gfx90a":
		return CDNA2
	case "gfx940", "gfx941", "gfx942":
		return CDNA3
	}
	return Unknown
}

package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/omnigate/omnigate/internal/hardware"
)

// runHW is `omnigate hw [--json] [--catalog]`: the machine's GPUs as
// nvidia-smi or rocm-smi report them, or the GPU catalog. A machine
// without a GPU is not a failure: it prints why none was found.
func runHW(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return hw(ctx, args, stdout, stderr, hardware.Exec)
}

func hw(ctx context.Context, args []string, stdout, stderr io.Writer, run hardware.Runner) error {
	fs := newFlags("hw", "[--json] [--catalog]", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: omnigate hw [--json] [--catalog]

Detects the machine's GPUs through nvidia-smi (or rocm-smi) and prints one
line per GPU (index, name, memory total and free, compute capability,
generation), then the interconnect, the driver and CUDA versions, and what
the generation supports. Without a GPU it prints "no GPU found: REASON" and
exits 0. --catalog lists the GPU models omnigate knows instead, by the names
it accepts.

Flags:
`)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON: the machine, or with --catalog the models")
	catalog := fs.Bool("catalog", false, "list the known GPU models instead of detecting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "omnigate hw: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *catalog {
		return writeCatalog(stdout, *asJSON)
	}
	m := hardware.Detect(ctx, run)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	return hardware.WriteText(stdout, m)
}

// writeCatalog lists the catalog's models with what each supports.
func writeCatalog(w io.Writer, asJSON bool) error {
	models := hardware.Models()
	if asJSON {
		type entry struct {
			hardware.Model
			Supports hardware.Supports `json:"supports"`
		}
		list := make([]entry, len(models))
		for i, m := range models {
			list[i] = entry{m, m.Supports()}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	return hardware.WriteCatalog(w)
}

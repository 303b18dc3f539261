package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/omnigate/omnigate/internal/router"
)

// runRoute is `omnigate route train|eval`: the learned tier router's
// tools.
func runRoute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "train" && args[0] != "eval") {
		fmt.Fprint(stderr, `Usage: omnigate route train --data FILE [--out FILE]
       omnigate route eval --data FILE [--scorer FILE]

train fits the auto router's scorer (routing.auto.scorer.file) to a labelled
set: JSON lines of {"request": an OpenAI request, "label": "small" | "large"},
the label naming the tier that answered it well. It trains on four fifths,
writes the scorer, and prints the quality-versus-large-share curve on the
held-out fifth beside random routing's. eval prints that curve for a scorer
(default: the built-in one) on a whole set.
`)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	train := args[0] == "train"
	fs := newFlags("route "+args[0], "--data FILE", stderr)
	data := fs.String("data", "", "the labelled set (`file`, JSON lines)")
	out := fs.String("out", "route-scorer.json", "where train writes the scorer (`file`)")
	scorerFile := fs.String("scorer", "", "the scorer eval reads (`file`; default: the built-in one)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *data == "" {
		fmt.Fprintln(stderr, "omnigate route: --data is required")
		return errUsage
	}
	f, err := os.Open(*data)
	if err != nil {
		return err
	}
	samples, err := router.ReadSamples(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *data, err)
	}
	if len(samples) < 10 {
		return fmt.Errorf("%s: %d labelled requests are too few to learn from", *data, len(samples))
	}
	held := samples
	var s *router.Scorer
	if train {
		var rest []router.Sample
		rest, held = router.Split(samples)
		s = router.Train(rest)
		b, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "trained on %d requests; scorer written to %s (set routing.auto.scorer.file)\n", len(rest), *out)
	} else if s, err = router.LoadScorer(*scorerFile); err != nil {
		return err
	}
	large := 0
	for _, x := range held {
		if x.Large {
			large++
		}
	}
	fmt.Fprintf(stdout, "evaluated on %d requests, %d (%.0f%%) needing the large tier\n\n", len(held), large, 100*float64(large)/float64(len(held)))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "threshold\tlarge share\tquality\trandom\t")
	for _, p := range router.Evaluate(s, held) {
		fmt.Fprintf(tw, "%.2f\t%.2f\t%.3f\t%.3f\t\n", p.Threshold, p.LargeShare, p.Quality, p.Random)
	}
	return tw.Flush()
}

package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is the outcome of an evaluation: one row per target, the first
// being the baseline the others are compared with.
type Report struct {
	Items         int `json:"items"`
	WithReference int `json:"with_reference"` // items with a reference
	// Baseline is the first target, the one agreement and the logprob
	// difference are measured against.
	Baseline string         `json:"baseline"`
	Targets  []TargetReport `json:"targets"`
}

// TargetReport is one target's figures.
type TargetReport struct {
	Target string `json:"target"`
	Items  int    `json:"items"`
	Errors int    `json:"errors"` // items not answered
	// Correct counts the items with a reference answered correctly;
	// Accuracy is it over every item with a reference (an item not
	// answered is not correct); nil when no item has one.
	Correct  int      `json:"correct"`
	Accuracy *float64 `json:"accuracy"`
	// Compared counts the items both this target and the baseline
	// answered; Agreement is the share of them answered the same
	// (normalised). Nil for the baseline, and when none was compared.
	Compared  int      `json:"compared"`
	Agreement *float64 `json:"agreement"`
	// LogprobItems counts the items answered the same, both with
	// logprobs; LogprobDiff is the mean over them of this target's mean
	// token logprob less the baseline's. Nil without such items.
	LogprobItems int      `json:"logprob_items"`
	LogprobDiff  *float64 `json:"mean_logprob_diff"`
	// Latency is client-side, over the items answered.
	Latency          Latency  `json:"latency_ms"`
	PromptTokens     int64    `json:"prompt_tokens"`
	CompletionTokens int64    `json:"completion_tokens"`
	FirstError       string   `json:"first_error,omitempty"`
	Notes            []string `json:"notes,omitempty"`
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	Mean float64 `json:"mean"`
}

// Summarize scores runs (one per target, each answering items in order)
// against the items' references and the first run.
func Summarize(items []Item, runs []Run) *Report {
	r := &Report{Items: len(items)}
	for i := range items {
		if items[i].Reference != "" {
			r.WithReference++
		}
	}
	if len(runs) > 0 {
		r.Baseline = runs[0].Target
	}
	for k, run := range runs {
		t := TargetReport{Target: run.Target, Items: len(items), Notes: run.Notes}
		var lat []time.Duration
		same := 0
		for i, a := range run.Answers {
			if a.Error != "" {
				t.Errors++
				if t.FirstError == "" {
					t.FirstError = fmt.Sprintf("%s: %s", a.ID, a.Error)
				}
				continue
			}
			lat = append(lat, a.Latency)
			t.PromptTokens += int64(a.PromptTokens)
			t.CompletionTokens += int64(a.CompletionTokens)
			if a.Correct != nil && *a.Correct {
				t.Correct++
			}
			if k == 0 {
				continue
			}
			b := runs[0].Answers[i]
			if b.Error != "" {
				continue
			}
			t.Compared++
			if Normalize(a.Text) != Normalize(b.Text) {
				continue
			}
			same++
			if a.MeanLogprob != nil && b.MeanLogprob != nil {
				t.LogprobItems++
				d := *a.MeanLogprob - *b.MeanLogprob
				if t.LogprobDiff == nil {
					t.LogprobDiff = new(float64)
				}
				*t.LogprobDiff += d
			}
		}
		if k > 0 {
			t.Agreement = share(same, t.Compared)
		}
		t.Accuracy = share(t.Correct, r.WithReference)
		if t.LogprobDiff != nil {
			*t.LogprobDiff /= float64(t.LogprobItems)
		}
		t.Latency = summarizeLatency(lat)
		r.Targets = append(r.Targets, t)
	}
	return r
}

// share is n/of, nil when of is 0.
func share(n, of int) *float64 {
	if of == 0 {
		return nil
	}
	v := float64(n) / float64(of)
	return &v
}

// summarizeLatency gives the nearest-rank p50 and p90 and the mean.
func summarizeLatency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{P50: rank(0.5), P90: rank(0.9), Mean: ms(sum / time.Duration(len(ds)))}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteTable prints the report as an aligned table, one row per target,
// then each target's notes and first error.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "omnigate eval — %d items, %d with a reference; agreement and logprob Δ against %s\n\n", r.Items, r.WithReference, r.Baseline)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\titems\terrors\tcorrect\taccuracy\tagreement\tlogprob Δ\tp50 ms\tp90 ms\tmean ms\tprompt tokens\tcompletion tokens\t")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%d\t%d\t\n", t.Target, t.Items, t.Errors, t.Correct,
			percent(t.Accuracy), percent(t.Agreement), signed(t.LogprobDiff), t.Latency.P50, t.Latency.P90, t.Latency.Mean, t.PromptTokens, t.CompletionTokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Targets {
		for _, n := range t.Notes {
			fmt.Fprintf(w, "  %s: %s\n", t.Target, n)
		}
		if t.FirstError != "" {
			fmt.Fprintf(w, "  %s first error: %s\n", t.Target, t.FirstError)
		}
	}
	return nil
}

// WriteJSON prints the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func percent(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}

func signed(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+.4f", *v)
}

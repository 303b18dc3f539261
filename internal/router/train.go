package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/omnigate/omnigate/internal/request"
)

// Sample is one labelled request: its features, and whether only the
// large tier answered it well.
type Sample struct {
	F     Features
	Large bool
}

// Train fits a scorer to samples: standardized features, full-batch
// gradient descent on the L2-regularized log loss. Deterministic.
func Train(samples []Sample) *Scorer {
	n, d := len(samples), len(scored)
	s := &Scorer{Features: slices.Clone(scored), Mean: make([]float64, d), Scale: make([]float64, d), Weights: make([]float64, d)}
	xs := make([][len(featureNames) - 1]float64, n)
	for i := range samples {
		xs[i] = vector(&samples[i].F)
		for j := range d {
			s.Mean[j] += xs[i][j] / float64(n)
		}
	}
	for i := range xs {
		for j := range d {
			dx := xs[i][j] - s.Mean[j]
			s.Scale[j] += dx * dx / float64(n)
		}
	}
	for j := range d {
		s.Scale[j] = math.Sqrt(s.Scale[j])
		if s.Scale[j] < 1e-9 {
			s.Scale[j] = 1 // a constant feature: its weight stays 0
		}
		for i := range xs {
			xs[i][j] = (xs[i][j] - s.Mean[j]) / s.Scale[j]
		}
	}
	const (
		rate   = 0.5
		lambda = 1e-3
		rounds = 2000
	)
	grad := make([]float64, d)
	for range rounds {
		clear(grad)
		gb := 0.0
		for i := range xs {
			z := s.Bias
			for j := range d {
				z += s.Weights[j] * xs[i][j]
			}
			y := 0.0
			if samples[i].Large {
				y = 1
			}
			e := 1/(1+math.Exp(-z)) - y
			gb += e
			for j := range d {
				grad[j] += e * xs[i][j]
			}
		}
		s.Bias -= rate * gb / float64(n)
		for j := range d {
			s.Weights[j] -= rate * (grad[j]/float64(n) + lambda*s.Weights[j])
		}
	}
	return s
}

// Point is one threshold of an evaluation: the share of requests sent to
// the large tier, the quality (the share answered well: by the small
// tier when it sufficed, else by the large one) and random routing's
// quality at the same share.
type Point struct {
	Threshold, LargeShare, Quality, Random float64
}

// Evaluate scores samples at thresholds 0, 0.05 … 1 and returns the
// quality-versus-large-share curve, beside random routing's.
func Evaluate(s *Scorer, samples []Sample) []Point {
	var needLarge float64
	ps := make([]float64, len(samples))
	for i := range samples {
		ps[i] = s.Score(&samples[i].F)
		if samples[i].Large {
			needLarge++
		}
	}
	n := float64(len(samples))
	var out []Point
	for k := 0; k <= 20; k++ {
		t := float64(k) / 20
		large, good := 0.0, 0.0
		for i, p := range ps {
			toLarge := p >= t
			if toLarge {
				large++
			}
			if toLarge || !samples[i].Large {
				good++
			}
		}
		share := large / n
		out = append(out, Point{Threshold: t, LargeShare: share, Quality: good / n, Random: (n-needLarge)/n + share*needLarge/n})
	}
	return out
}

// ReadSamples reads a labelled set: JSON lines of {"request": an OpenAI
// chat or completions request, "label": "small" or "large"} (other keys
// are ignored). A bad line is an error naming it.
func ReadSamples(r io.Reader) ([]Sample, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	var out []Sample
	var req request.Request
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l struct {
			Request json.RawMessage `json:"request"`
			Label   string          `json:"label"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if l.Label != "small" && l.Label != "large" {
			return nil, fmt.Errorf("line %d: label is %q, not small or large", n, l.Label)
		}
		ep := request.Chat
		if !bytes.Contains(l.Request, []byte(`"messages"`)) {
			ep = request.Completions
		}
		if err := request.Parse(ep, l.Request, &req); err != nil {
			return nil, fmt.Errorf("line %d: the request: %w", n, err)
		}
		out = append(out, Sample{F: Extract(&req, l.Request, nil), Large: l.Label == "large"})
	}
	return out, sc.Err()
}

// Split is samples' held-out part (every fifth) and the rest, for
// training.
func Split(samples []Sample) (train, held []Sample) {
	for i, s := range samples {
		if i%5 == 4 {
			held = append(held, s)
		} else {
			train = append(train, s)
		}
	}
	return train, held
}

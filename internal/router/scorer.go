package router

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// scored are the features the scorer weighs: all but latency, which is
// the client's word, not the request's nature (a rule or the latency
// step acts on it).
var scored = featureNames[:len(featureNames)-1]

// Scorer is the learned router: a logistic regression over the
// features, each transformed (log(1+x) for counts, as it is for flags and
// shares) and standardized. Score is the probability that the request
// needs the large tier.
type Scorer struct {
	Features []string  `json:"features"` // the names, in the order below
	Mean     []float64 `json:"mean"`
	Scale    []float64 `json:"scale"`
	Weights  []float64 `json:"weights"`
	Bias     float64   `json:"bias"`
}

// Score returns the probability that f's request needs the large tier.
func (s *Scorer) Score(f *Features) float64 {
	x := vector(f)
	z := s.Bias
	for i, w := range s.Weights {
		z += w * (x[i] - s.Mean[i]) / s.Scale[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// vector is f's scored features, transformed.
func vector(f *Features) [len(featureNames) - 1]float64 {
	l := func(n int) float64 { return math.Log1p(float64(max(n, 0))) }
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	return [...]float64{l(f.PromptTokens), l(f.Turns), l(f.Images), l(f.Audios), l(f.Videos), l(f.Tools), b(f.JSONOut), b(f.AudioOut),
		l(f.MaxTokens), l(f.Code), l(f.Math), l(f.Reasoning), float64(f.NonASCII)}
}

// builtin is the scorer trained on the committed labelled set
// (testdata/routing.jsonl; docs/routing.md).
//
//go:embed scorer.json
var builtin []byte

// LoadScorer reads a scorer written by `omnigate route train`; "" is the
// built-in one.
func LoadScorer(path string) (*Scorer, error) {
	b := builtin
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	var s Scorer
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("scorer %s: %w", path, err)
	}
	if !slices.Equal(s.Features, scored) || len(s.Mean) != len(scored) || len(s.Scale) != len(scored) || len(s.Weights) != len(scored) {
		return nil, fmt.Errorf("scorer %s: its features are not this gateway's (%v): train it again with omnigate route train", path, scored)
	}
	for _, sc := range s.Scale {
		if !(sc > 0) {
			return nil, fmt.Errorf("scorer %s: a scale is not positive", path)
		}
	}
	return &s, nil
}

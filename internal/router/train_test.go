package router

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

func readSet(t *testing.T) []Sample {
	t.Helper()
	f, err := os.Open(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadSamples(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// at returns the curve's point whose large share is nearest share.
func at(curve []Point, share float64) Point {
	best := curve[0]
	for _, p := range curve {
		if abs(p.LargeShare-share) < abs(best.LargeShare-share) {
			best = p
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestTrainBeatsRandom trains on the committed set and checks, on its
// held-out fifth, that the scorer answers better than random routing at
// the same share of large-tier traffic; and that the built-in scorer is
// this training's (-update rewrites scorer.json).
func TestTrainBeatsRandom(t *testing.T) {
	train, held := Split(readSet(t))
	s := Train(train)
	curve := Evaluate(s, held)
	for _, share := range []float64{0.3, 0.5} {
		p := at(curve, share)
		t.Logf("large share %.2f (threshold %.2f): quality %.3f, random %.3f", p.LargeShare, p.Threshold, p.Quality, p.Random)
		if p.Quality < p.Random+0.05 {
			t.Errorf("at a large share of %.2f the scorer's quality %.3f is not clearly above random's %.3f", p.LargeShare, p.Quality, p.Random)
		}
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile("scorer.json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := LoadScorer("")
	if err != nil {
		t.Fatalf("the built-in scorer does not load: %v", err)
	}
	// Compared within a tolerance: a platform that fuses multiply-adds
	// trains the same scorer to the last few bits only.
	same := abs(bs.Bias-s.Bias) < 1e-6
	for i := range s.Weights {
		same = same && abs(bs.Weights[i]-s.Weights[i]) < 1e-6 && abs(bs.Mean[i]-s.Mean[i]) < 1e-9 && abs(bs.Scale[i]-s.Scale[i]) < 1e-9
	}
	if !same {
		t.Errorf("scorer.json is not the committed set's training: go test ./internal/router -run TestTrainBeatsRandom -update")
	}
}

func TestReadSamplesErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "{\n", "line 1"},
		{"bad label", `{"request":{"model":"a","messages":[{"role":"user","content":"x"}]},"label":"medium"}`, "medium"},
		{"bad request", "\n" + `{"request":{"model":"a","messages":[]},"label":"small"}`, "line 2: the request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSamples(bytes.NewReader([]byte(tc.in)))
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

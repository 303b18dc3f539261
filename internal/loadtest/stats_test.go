package loadtest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ms1(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms1(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", []time.Duration{ms1(7)}, 99, ms1(7)},
		{"p50 of 100", hundred, 50, ms1(50)},
		{"p90 of 100", hundred, 90, ms1(90)},
		{"p99 of 100", hundred, 99, ms1(99)},
		{"p100 of 100", hundred, 100, ms1(100)},
		{"tiny p rounds up to first", hundred, 0.001, ms1(1)},
		{"p50 of 4 is 2nd", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p51 of 4 is 3rd", []time.Duration{1, 2, 3, 4}, 51, 3},
		{"p99 of 10 is max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p=%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSamplesSummarizeExact(t *testing.T) {
	s := NewSamples(1000)
	// Added out of order: Summarize must sort.
	for i := 100; i >= 1; i-- {
		s.Add(ms1(i))
	}
	want := Summary{Count: 100, MeanUS: 50500, P50US: 50000, P90US: 90000, P99US: 99000, MaxUS: 100000}
	if d := cmp.Diff(want, s.Summarize()); d != "" {
		t.Errorf("Summarize (-want +got):\n%s", d)
	}
}

func TestSamplesReservoirBounded(t *testing.T) {
	s := NewSamples(64)
	for i := 1; i <= 10_000; i++ {
		s.Add(time.Duration(i))
	}
	if len(s.vals) != 64 {
		t.Fatalf("kept %d samples, want 64", len(s.vals))
	}
	got := s.Summarize()
	if got.Count != 10_000 || got.MaxUS != us(10_000) {
		t.Errorf("count %d max %v: want every observation counted and the exact max", got.Count, got.MaxUS)
	}
	// A uniform reservoir over 1..10000 keeps values from past the first 64.
	late := 0
	for _, v := range s.vals {
		if v > 64 {
			late++
		}
	}
	if late == 0 {
		t.Error("reservoir never replaced a sample")
	}
}

func TestSamplesEmpty(t *testing.T) {
	if d := cmp.Diff(Summary{}, NewSamples(0).Summarize()); d != "" {
		t.Error(d)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

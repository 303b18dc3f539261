package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"testing"
	"time"
)

func TestQuantizationFor(t *testing.T) {
	for _, tc := range []struct {
		label      string
		speedup    float64
		divergence float64
	}{
		{"", 1, 0}, {"bf16", 1, 0}, {"fp16", 1, 0},
		{"fp8", 1.3, 0.03}, {"int8", 1.3, 0.03},
		{"awq-int4", 1.6, 0.08}, {"gptq-int4", 1.6, 0.08}, {"awq", 1.6, 0.08},
		{"nf5", 1.2, 0.05},
	} {
		q := QuantizationFor(tc.label)
		if q.Speedup != tc.speedup || q.Divergence != tc.divergence || q.Label != tc.label {
			t.Errorf("QuantizationFor(%q) = %+v", tc.label, q)
		}
	}
	p := Profile{PrefillPerToken: 160 * time.Microsecond, DecodeBase: 16 * time.Millisecond, DecodePerSeq: 80 * time.Microsecond}
	q := QuantizationFor("awq-int4")
	q.apply(&p)
	if p.DecodeBase != 10*time.Millisecond || p.PrefillPerToken != 100*time.Microsecond || p.DecodePerSeq != 50*time.Microsecond {
		t.Errorf("int4 steps: %+v, want 1.6 times faster", p)
	}
}

// TestQuantizedVariantAnswers: over 1,000 prompts, an int4 variant
// answers as the full-precision engine does but for about 8 % of them,
// the same ones every time, and its log probabilities of the same
// answers are lower by its shift.
func TestQuantizedVariantAnswers(t *testing.T) {
	p, err := LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	_, full := startEngine(t, p, Options{ModelName: "m"})
	q := QuantizationFor("awq-int4")
	_, quant := startEngine(t, p, Options{ModelName: "m", Quantization: q})
	type answer struct {
		Choices []struct {
			Message  struct{ Content string }
			Logprobs struct {
				Content []struct{ Logprob float64 }
			}
		}
	}
	ask := func(srv *httptest.Server, i int) answer {
		body := fmt.Sprintf(`{"model":"m","temperature":0,"logprobs":true,"max_tokens":16,"messages":[{"role":"user","content":"question %d"}]}`, i)
		_, b := post(t, srv, "/v1/chat/completions", body)
		var resp answer
		if err := json.Unmarshal(b, &resp); err != nil || len(resp.Choices) != 1 {
			t.Fatalf("%s: %v", b, err)
		}
		return resp
	}
	const n = 1000
	differ := 0
	for i := range n {
		a, b := ask(full, i), ask(quant, i)
		if a.Choices[0].Message.Content != b.Choices[0].Message.Content {
			differ++
			continue
		}
		la, lb := a.Choices[0].Logprobs.Content, b.Choices[0].Logprobs.Content
		if len(la) == 0 || len(la) != len(lb) || math.Abs(la[0].Logprob-lb[0].Logprob-q.LogprobShift) > 1e-9 {
			t.Fatalf("prompt %d, same answer: logprobs %v and %v, want lower by %v", i, la, lb, q.LogprobShift)
		}
	}
	if share := float64(differ) / n; math.Abs(share-q.Divergence) > 0.03 {
		t.Errorf("%d of %d answers differ (%.3f), want about %.2f", differ, n, share, q.Divergence)
	}
	if again := ask(quant, 7); again.Choices[0].Message.Content != ask(quant, 7).Choices[0].Message.Content {
		t.Error("the variant's answer to one request changes between calls")
	}
}

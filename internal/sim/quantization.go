package sim

import (
	"strings"
	"time"
)

// Quantization makes an engine behave as a quantized variant of its
// profile's model: faster steps, and now and then another answer than
// the full-precision model gives the same request (the variant's
// answers drift from the original's at Divergence), and slightly lower
// log probabilities when it answers the same (LogprobShift, in nats).
// The draw is per answer and deterministic: the same request gets the
// same answer from the same variant every time, as a greedy engine would.
type Quantization struct {
	Label        string
	Speedup      float64 // step times are divided by it; 1: as the profile
	Divergence   float64 // the share of answers that differ, 0 to 1
	LogprobShift float64 // subtracted from each sampled token's logprob
}

// QuantizationFor returns the variant a deployment's quantization label
// names: bf16 and fp16 (and "") are the profile itself; fp8 and int8
// are a little faster and rarely differ; the int4 kinds (awq-int4,
// gptq-int4, or any label with int4) are faster still and differ more.
// The figures are the simulator's, chosen to resemble what published
// evaluations of weight-only quantization report (a few percent of
// answers change, decode speeds up as memory traffic shrinks), not
// measurements.
func QuantizationFor(label string) Quantization {
	q := Quantization{Label: label, Speedup: 1}
	switch {
	case label == "", label == "bf16", label == "fp16":
	case label == "fp8", label == "int8":
		q.Speedup, q.Divergence, q.LogprobShift = 1.3, 0.03, 0.01
	case strings.Contains(label, "int4"), label == "awq", label == "gptq":
		q.Speedup, q.Divergence, q.LogprobShift = 1.6, 0.08, 0.04
	default:
		q.Speedup, q.Divergence, q.LogprobShift = 1.2, 0.05, 0.02
	}
	return q
}

// quantizationSalt perturbs a diverging answer's seed.
const quantizationSalt uint64 = 0x7175616e74 // "quant"

// diverge returns the seed a variant answers with: seed itself but for
// the share q.Divergence of seeds, drawn from the seed.
func (q *Quantization) diverge(seed uint64) uint64 {
	if q.Divergence <= 0 {
		return seed
	}
	if float64(mix(seed, quantizationSalt)>>11)/(1<<53) < q.Divergence {
		return mix(seed, quantizationSalt+1)
	}
	return seed
}

// apply speeds p's steps up by q.Speedup.
func (q *Quantization) apply(p *Profile) {
	if q.Speedup <= 0 || q.Speedup == 1 {
		return
	}
	div := func(d *time.Duration) { *d = time.Duration(float64(*d) / q.Speedup) }
	div(&p.PrefillPerToken)
	div(&p.DecodeBase)
	div(&p.DecodePerSeq)
}

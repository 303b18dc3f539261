package sim

import (
	"strings"
	"testing"
)

// longSystemChat is a chat request with a ~2,000-token system prompt and a
// short question, the shape prefix caching is for.
var longSystemChat = `{"messages":[{"role":"system","content":"` + strings.Repeat("You are a careful assistant; answer briefly. ", 250) +
	`"},{"role":"user","content":"What is the capital of France?"}]}`

// BenchmarkParseChat measures decoding and costing a chat request with a
// long system prompt on a scheduled profile.
func BenchmarkParseChat(b *testing.B) {
	p := mustProfile(b, "qwen3-omni-7b")
	body := []byte(longSystemChat)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseChat(body, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCore runs 64 sequences of 1,000 prompt tokens and 32 generated
// tokens through the continuous-batching core, in virtual time: without
// block hashes, with a distinct prompt each, and all with the same prompt.
func BenchmarkCore(b *testing.B) {
	p := mustProfile(b, "qwen3-omni-7b")
	distinct := make([][]uint64, 64)
	for i := range distinct {
		distinct[i] = make([]uint64, 1000/p.BlockSize)
		for j := range distinct[i] {
			distinct[i][j] = uint64(i)<<32 | uint64(j)
		}
	}
	for _, tc := range []struct {
		name   string
		hashes func(i int) []uint64
	}{
		{"uncached", func(int) []uint64 { return nil }},
		{"distinct", func(i int) []uint64 { return distinct[i] }},
		{"shared", func(int) []uint64 { return distinct[0] }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := newCore(p)
				for i := range 64 {
					c.add(&seq{prompt: 1000, target: 32, hashes: tc.hashes(i)})
				}
				for !c.idle() {
					for _, q := range c.complete(c.plan()) {
						if q.generated == q.target {
							c.remove(q)
						}
					}
				}
			}
		})
	}
}

package sim

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Log probabilities are drawn, not computed: for token k of an answer, the
// answer's seed and k decide the sampled token's probability p (between
// 0.35 and 0.9999, mostly near 1) and the alternatives' (the j-th at most
// min(p, 1-p) / 2^j), so the values are deterministic, the sampled token is
// the most likely one (greedy decoding would have picked it too) and the
// probabilities of one position sum to at most 1. The alternatives are
// vocabulary words spelt like the sampled token.

// Most alternatives a request may ask for: chat top_logprobs (OpenAI's and
// vLLM's default max_logprobs) and completions logprobs (OpenAI's limit).
const (
	maxTopLogprobs               = 20
	maxCompletionLogprobs        = 5
	logprobSalt           uint64 = 0x6c6f6770726f6273 // "logprobs"
)

// tokenDraw is one token of a position's distribution and its logprob.
type tokenDraw struct {
	tok string
	lp  float64
}

// topOf appends to dst the sampled token tok (position k of the answer
// seeded by seed, its logprob lowered by shift: a quantized variant's)
// and then n-1 alternatives, most likely first.
func topOf(dst []tokenDraw, seed uint64, k int, tok string, n int, shift float64) []tokenDraw {
	s := mix(seed, logprobSalt)
	u := func(salt uint64) float64 { return float64(mix(s, salt)>>11) / (1 << 53) }
	pos := uint64(k) << 8
	x := u(pos)
	p := 0.9999 - 0.6499*x*x
	dst = append(dst, tokenDraw{tok, math.Log(p) - shift})
	pool := vocab.spaced
	if tok != "" && 'A' <= tok[0] && tok[0] <= 'Z' {
		pool = vocab.first
	}
	at := mix(s, pos|0xff) % uint64(len(pool))
	m := min(p, 1-p)
	for j := 1; j < n; j++ {
		if pool[at] == tok {
			at = (at + 1) % uint64(len(pool))
		}
		m /= 2
		dst = append(dst, tokenDraw{pool[at], math.Log(m * (0.6 + 0.4*u(pos|uint64(j))))})
		at = (at + 1) % uint64(len(pool))
	}
	return dst
}

func appendLogprob(b []byte, lp float64) []byte {
	return strconv.AppendFloat(b, lp, 'g', 10, 64)
}

// appendTokenLogprob appends `"token":…,"logprob":…,"bytes":[…]`.
func appendTokenLogprob(b []byte, d tokenDraw) []byte {
	b = append(b, `"token":`...)
	b = jsonscan.AppendString(b, d.tok)
	b = append(b, `,"logprob":`...)
	b = appendLogprob(b, d.lp)
	b = append(b, `,"bytes":[`...)
	for i := 0; i < len(d.tok); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(d.tok[i]), 10)
	}
	return append(b, ']')
}

// appendChatLogprobs appends chat logprobs, {"content": […]}, for tokens,
// the first being position first of the answer: each entry the token, its
// logprob, bytes and top alternatives (the token itself first).
func appendChatLogprobs(b []byte, seed uint64, tokens []string, first, top int, shift float64) []byte {
	var buf [maxTopLogprobs + 1]tokenDraw
	b = append(b, `{"content":[`...)
	for i, tok := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		draws := topOf(buf[:0], seed, first+i, tok, max(top, 1), shift)
		b = append(b, '{')
		b = appendTokenLogprob(b, draws[0])
		b = append(b, `,"top_logprobs":[`...)
		for j := range top {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendTokenLogprob(b, draws[j])
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// appendCompletionLogprobs appends legacy completions logprobs, {"tokens",
// "token_logprobs", "top_logprobs", "text_offset"}, for tokens, the first
// being position first of the answer and starting at character offset.
// Each top_logprobs entry maps the sampled token and top-1 alternatives to
// their logprobs (the sampled token alone for logprobs 0, as vLLM always
// reports it). Offsets count characters, as Python's len does.
func appendCompletionLogprobs(b []byte, seed uint64, tokens []string, first, top, offset int, shift float64) []byte {
	var buf [maxTopLogprobs + 1]tokenDraw
	b = append(b, `{"tokens":[`...)
	for i, tok := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonscan.AppendString(b, tok)
	}
	b = append(b, `],"token_logprobs":[`...)
	for i, tok := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLogprob(b, topOf(buf[:0], seed, first+i, tok, 1, shift)[0].lp)
	}
	b = append(b, `],"top_logprobs":[`...)
	for i, tok := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, d := range topOf(buf[:0], seed, first+i, tok, max(top, 1), shift) {
			if j > 0 {
				b = append(b, ',')
			}
			b = jsonscan.AppendString(b, d.tok)
			b = append(b, ':')
			b = appendLogprob(b, d.lp)
		}
		b = append(b, '}')
	}
	b = append(b, `],"text_offset":[`...)
	for i, tok := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(offset), 10)
		offset += utf8.RuneCountInString(tok)
	}
	return append(b, "]}"...)
}

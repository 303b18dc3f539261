package sim

import (
	_ "embed"
	"math"
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/tokenize"
)

// words is the generator's vocabulary: short English words (five letters at
// most, so each is exactly one token under countTokens).
//
//go:embed words.txt
var wordsFile string

// vocab holds each word in the three spellings the generator emits, built
// once so generating a token never allocates.
var vocab = func() (v struct{ first, spaced, spacedCap []string }) {
	for _, w := range strings.Fields(wordsFile) {
		c := strings.ToUpper(w[:1]) + w[1:]
		v.first = append(v.first, c)
		v.spaced = append(v.spaced, " "+w)
		v.spacedCap = append(v.spacedCap, " "+c)
	}
	return v
}()

// charsPerToken is how many letters or digits make one token.
const charsPerToken = tokenize.CharsPerToken

// countTokens is the simulator's tokenizer (package tokenize).
func countTokens(s string) int { return tokenize.Count(s) }

// splitTokens appends s cut into the pieces countTokens counts, so that
// len(pieces) == countTokens(s) and the pieces concatenate to s: whitespace
// joins the piece after it (trailing whitespace the last piece), a run of
// letters and digits is cut every 5 characters. Structured answers (JSON,
// tool-call arguments) are streamed and counted by these pieces.
func splitTokens(out []string, s string) []string {
	first := len(out)
	start, run := 0, 0 // start of the current piece; letters in it
	cut := func(end int) {
		if end > start {
			out = append(out, s[start:end])
		}
		start, run = end, 0
	}
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		switch {
		case r < utf8.RuneSelf && (r == ' ' || r == '\n' || r == '\t' || r == '\r') || r >= utf8.RuneSelf && unicode.IsSpace(r):
			if run > 0 {
				cut(i)
			}
		case isWordRune(r):
			if run == charsPerToken {
				cut(i)
			}
			run++
		default: // one token on its own, with the whitespace before it
			if run > 0 {
				cut(i)
			}
			cut(i + size)
		}
		i += size
	}
	switch {
	case run > 0:
		cut(len(s))
	case start < len(s) && len(out) > first: // trailing whitespace is free: it joins the last piece
		out[len(out)-1] += s[start:]
	case start < len(s): // whitespace only: one piece, though it costs nothing
		out = append(out, s[start:])
	}
	return out
}

// isWordRune reports whether r extends a run of letters and digits, as
// countTokens sees it (CJK characters are tokens of their own).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
	}
	if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) {
		return false
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// seedHash accumulates the parts of a request that decide its answer.
type seedHash struct{ h uint64 }

func newSeedHash() seedHash { return seedHash{h: 14695981039346656037} }

// str mixes s (and a separator) into the hash: FNV-1a, inlined so hashing a
// large base64 media part does not allocate.
func (s *seedHash) str(v string) {
	h := s.h
	for i := 0; i < len(v); i++ {
		h ^= uint64(v[i])
		h *= 1099511628211
	}
	h ^= 0xff
	h *= 1099511628211
	s.h = h
}

func (s *seedHash) u64(v uint64) {
	for range 8 {
		s.h ^= v & 0xff
		s.h *= 1099511628211
		v >>= 8
	}
}

// mix derives an independent 64-bit draw from seed and salt (SplitMix64's
// finalizer), for decisions that must not correlate with the answer's words.
func mix(seed, salt uint64) uint64 {
	z := seed + (salt+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// choiceSeed derives the seed of one choice from the prompt hash, the
// request's seed and temperature. With temperature 0 (greedy decoding) the
// seed does not matter, as in a real engine.
func choiceSeed(prompt uint64, seed *int64, temperature *float64, index int) uint64 {
	s := seedHash{h: prompt}
	if temperature == nil || *temperature != 0 {
		if seed != nil {
			s.u64(1)
			s.u64(uint64(*seed))
		}
		if temperature != nil {
			s.u64(math.Float64bits(*temperature))
		}
		s.u64(uint64(index))
	}
	return s.h
}

// answer is one choice's generated text or tool calls, decided before
// generation starts.
type answer struct {
	tokens []string   // one entry per generated token; may be "" after a stop string
	text   string     // what the client sees; "" for tool calls
	finish string     // "stop", "length" or "tool_calls"
	calls  []toolCall // a tool-call answer: the calls its tokens spell
}

// generate draws the answer for seed: its natural length from lengthRange,
// capped at limit tokens, cut at the first stop string. The token sequence
// does not depend on the cap, so a smaller max_tokens gives a prefix.
func generate(seed uint64, lengthRange [2]int, limit int, stops []string) answer {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	natural := lengthRange[0]
	if lengthRange[1] > lengthRange[0] {
		natural += rng.IntN(lengthRange[1] - lengthRange[0] + 1)
	}
	n, finish := natural, "stop"
	if limit < n {
		n, finish = limit, "length"
	}
	toks := make([]string, 0, n)
	sentence := 0 // words since the sentence began
	for i := range n {
		switch {
		case i == natural-1:
			toks = append(toks, ".")
		case i == 0:
			toks = append(toks, vocab.first[rng.IntN(len(vocab.first))])
			sentence = 1
		case sentence == 0:
			toks = append(toks, vocab.spacedCap[rng.IntN(len(vocab.spacedCap))])
			sentence = 1
		case sentence >= 4 && rng.IntN(8) == 0:
			toks = append(toks, ".")
			sentence = 0
		case sentence >= 3 && rng.IntN(12) == 0:
			toks = append(toks, ",")
			sentence = 1
		default:
			toks = append(toks, vocab.spaced[rng.IntN(len(vocab.spaced))])
			sentence++
		}
	}
	a := answer{tokens: toks, text: strings.Join(toks, ""), finish: finish}
	a.applyStops(stops)
	return a
}

// applyStops cuts the answer at the earliest stop string. Generation ends
// with the token that completes the match (that token is generated and
// counted, as vLLM counts it); the text ends just before the match.
func (a *answer) applyStops(stops []string) {
	at, end := -1, 0
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(a.text, s); i >= 0 && (at < 0 || i < at) {
			at, end = i, i+len(s)
		}
	}
	if at < 0 {
		return
	}
	off := 0
	for j, t := range a.tokens {
		start := off
		off += len(t)
		switch {
		case start >= at:
			a.tokens[j] = ""
		case off > at:
			a.tokens[j] = t[:at-start]
		}
		if off >= end {
			a.tokens = a.tokens[:j+1]
			break
		}
	}
	a.text = a.text[:at]
	a.finish = "stop"
}

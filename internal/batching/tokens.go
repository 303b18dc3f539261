package batching

import (
	"unicode"
	"unicode/utf8"
)

// charsPerToken is how many letters or digits make one token.
const charsPerToken = 5

// estimateTokens approximates s's token count for splitting usage. It is
// the simulator's tokenizer (internal/sim countTokens), so splits are exact
// against the simulator; real BPE tokenizers land near it on English
// (about 4 characters a token):
//   - whitespace is free;
//   - a run of letters and digits costs one token per started 5 characters;
//   - each CJK character (Han, Hiragana, Katakana, Hangul) is one token;
//   - every other character (punctuation, symbols, emoji) is one token.
func estimateTokens(s []byte) int {
	n, run := 0, 0
	flush := func() {
		n += (run + charsPerToken - 1) / charsPerToken
		run = 0
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_':
				run++
			case c == ' ' || c == '\n' || c == '\t' || c == '\r':
				flush()
			default:
				flush()
				n++
			}
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		i += size
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			flush()
			n++
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			run++
		case unicode.IsSpace(r):
			flush()
		default:
			flush()
			n++
		}
	}
	flush()
	return n
}

// splitTotal splits total in proportion to weights by largest remainder:
// the parts sum to total, and equal the weights when they sum to it. With
// all weights zero it splits evenly.
func splitTotal(total int, weights []int) []int {
	parts := make([]int, len(weights))
	sum := 0
	for _, w := range weights {
		sum += w
	}
	even := sum == 0
	if even {
		sum = len(weights)
	}
	rem := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		if even {
			w = 1
		}
		q := total * w
		parts[i], rem[i] = q/sum, q%sum
		given += parts[i]
	}
	for left := total - given; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		parts[best]++
		rem[best] = -1
	}
	return parts
}

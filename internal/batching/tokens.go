package batching

import (
	"github.com/omnigate/omnigate/internal/jsonscan"
	"github.com/omnigate/omnigate/internal/tokenize"
)

// estimateTokens approximates s's token count for splitting usage: the
// simulator's tokenizer (package tokenize), so splits are exact against
// the simulator; real BPE tokenizers land near it on English (about 4
// characters a token).
func estimateTokens(s []byte) int { return tokenize.Count(string(s)) }

// stringTokens is the estimated tokens of a JSON string's raw contents.
func stringTokens(raw []byte, escaped bool) int {
	if escaped {
		return estimateTokens(jsonscan.AppendUnescaped(nil, raw))
	}
	return estimateTokens(raw)
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

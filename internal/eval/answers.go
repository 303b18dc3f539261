package eval

import (
	"bufio"
	"encoding/json"
	"io"
)

// answerLine is one line of WriteAnswers.
type answerLine struct {
	Target string `json:"target"`
	Answer
	LatencyMS float64 `json:"latency_ms"`
}

// WriteAnswers writes every answer of runs as JSON lines, target by
// target in the items' order, with the target's name and the latency.
func WriteAnswers(w io.Writer, runs []Run) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range runs {
		for _, a := range r.Answers {
			if err := enc.Encode(answerLine{Target: r.Target, Answer: a, LatencyMS: ms(a.Latency)}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

package batching

// shape is what differs between the endpoints this package batches; the
// machinery (keys, windows, merging, splitting by index) is the same.
type shape struct {
	// input is the request member holding the inputs: a string or an
	// array of strings.
	input string
	// choices: each input has n answers (the request's "n", default 1),
	// the answer's entry input·n + j being input's answer j.
	choices bool
	// guarded are request members that pass a request through unless they
	// are null or false: what this package does not know how to split.
	guarded []string
	// list is the answer's array of entries, each with an integer "index".
	list string
	// text, when set, is an entry's string member whose estimated tokens
	// weigh the split of usage's completion_tokens.
	text string
}

var (
	embeddingsShape = &shape{input: "input", list: "data"}
	// echo, best_of, logprobs and suffix change what an answer holds or
	// how its choices are counted: not merged, to stay safe.
	completionsShape = &shape{input: "prompt", choices: true, guarded: []string{"echo", "best_of", "logprobs", "suffix"}, list: "choices", text: "text"}
)

// shapeOf is the shape of endpoint's requests; nil when it is not batched
// (chat completions, among others).
func shapeOf(endpoint string) *shape {
	switch endpoint {
	case "embeddings":
		return embeddingsShape
	case "completions":
		return completionsShape
	}
	return nil
}

// isGuarded reports whether key is one of s's guarded members.
func (s *shape) isGuarded(key []byte) bool {
	for _, g := range s.guarded {
		if string(key) == g {
			return true
		}
	}
	return false
}

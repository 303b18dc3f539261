package answer

import (
	"encoding/json"
	"unicode/utf8"
)

// The replayed stream's chunks: every delta field optional.

type replayChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
	Choices           []replayChoice  `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type replayChoice struct {
	Index        int             `json:"index"`
	Delta        *replayDelta    `json:"delta,omitempty"` // chat
	Text         *string         `json:"text,omitempty"`  // completions
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type replayDelta struct {
	Role             string           `json:"role,omitempty"`
	Content          *string          `json:"content,omitempty"`
	Refusal          *string          `json:"refusal,omitempty"`
	ReasoningContent *string          `json:"reasoning_content,omitempty"`
	ToolCalls        []replayToolCall `json:"tool_calls,omitempty"`
	Audio            *audioOut        `json:"audio,omitempty"`
}

type replayToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// pieceBytes is about how much text one replayed chunk carries.
const pieceBytes = 64

var null = json.RawMessage("null")

// Replay returns the stream of a whole answer (doc) as the engine would
// have sent it: per choice a role chunk, the text in pieces, tool calls,
// audio, a finish chunk; then the usage chunk when usage is asked for
// (and known); then [DONE].
func Replay(doc []byte, usage bool) ([]byte, error) {
	var a completion
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, err
	}
	object := "chat.completion.chunk"
	if a.Object == "text_completion" {
		object = "text_completion"
	}
	var out []byte
	var err error
	emit := func(cs ...replayChoice) {
		if err != nil {
			return
		}
		c := replayChunk{ID: a.ID, Object: object, Created: a.Created, Model: a.Model, SystemFingerprint: a.SystemFingerprint, Choices: cs}
		if cs == nil {
			c.Choices, c.Usage = []replayChoice{}, a.Usage
		}
		var b []byte
		if b, err = json.Marshal(&c); err == nil {
			out = append(out, "data: "...)
			out = append(out, b...)
			out = append(out, "\n\n"...)
		}
	}
	for _, c := range a.Choices {
		if c.Text != nil { // completions
			for _, p := range pieces(*c.Text) {
				emit(replayChoice{Index: c.Index, Text: &p, Logprobs: null})
			}
			empty := ""
			emit(replayChoice{Index: c.Index, Text: &empty, Logprobs: null, FinishReason: c.FinishReason})
			continue
		}
		m := c.Message
		if m == nil {
			m = &messageOut{Role: "assistant"}
		}
		empty := ""
		emit(replayChoice{Index: c.Index, Delta: &replayDelta{Role: m.Role, Content: &empty}, Logprobs: null})
		for _, p := range pieces(deref(m.ReasoningContent)) {
			emit(replayChoice{Index: c.Index, Delta: &replayDelta{ReasoningContent: &p}, Logprobs: null})
		}
		for _, p := range pieces(deref(m.Content)) {
			emit(replayChoice{Index: c.Index, Delta: &replayDelta{Content: &p}, Logprobs: null})
		}
		if m.Refusal != nil {
			emit(replayChoice{Index: c.Index, Delta: &replayDelta{Refusal: m.Refusal}, Logprobs: null})
		}
		if len(m.ToolCalls) > 0 {
			tcs := make([]replayToolCall, len(m.ToolCalls))
			for i, tc := range m.ToolCalls {
				tcs[i] = replayToolCall{Index: i, ID: tc.ID, Type: tc.Type}
				tcs[i].Function.Name, tcs[i].Function.Arguments = tc.Function.Name, tc.Function.Arguments
			}
			emit(replayChoice{Index: c.Index, Delta: &replayDelta{ToolCalls: tcs}, Logprobs: null})
		}
		if m.Audio != nil {
			emit(replayChoice{Index: c.Index, Delta: &replayDelta{Audio: m.Audio}, Logprobs: null})
		}
		emit(replayChoice{Index: c.Index, Delta: &replayDelta{}, Logprobs: null, FinishReason: c.FinishReason})
	}
	if usage && len(a.Usage) > 0 {
		emit()
	}
	if err != nil {
		return nil, err
	}
	return append(out, "data: [DONE]\n\n"...), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pieces cuts s into pieces of about pieceBytes, at rune boundaries.
func pieces(s string) []string {
	var out []string
	for len(s) > pieceBytes {
		n := pieceBytes
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

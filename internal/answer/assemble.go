// Package answer knows the shapes of OpenAI answers: it merges a streamed
// answer (chat.completion.chunk or text_completion events) into the one
// document a non-streaming request gets, and replays such a document as
// the stream an engine would have sent. A stream-only deployment answers a
// whole-answer request with the first; the cache keeps answers whole and
// serves streams with the second.
package answer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/omnigate/omnigate/internal/sse"
)

type chunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []chunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage"`
	Error             json.RawMessage `json:"error"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        chunkDelta      `json:"delta"`
	Text         *string         `json:"text"` // completions
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chunkDelta struct {
	Role             string          `json:"role"`
	Content          *string         `json:"content"`
	Refusal          *string         `json:"refusal"`
	ReasoningContent *string         `json:"reasoning_content"`
	ToolCalls        []toolCallDelta `json:"tool_calls"`
	Audio            *audioDelta     `json:"audio"`
}

type toolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type audioDelta struct {
	ID         string `json:"id"`
	Data       string `json:"data"`
	Transcript string `json:"transcript"`
	ExpiresAt  int64  `json:"expires_at"`
}

// The whole document, in OpenAI's field order.

type completion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []*choiceOut    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
}

type choiceOut struct {
	Index        int             `json:"index"`
	Message      *messageOut     `json:"message,omitempty"`
	Text         *string         `json:"text,omitempty"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`

	audio audioMerge
}

type messageOut struct {
	Role             string        `json:"role"`
	Content          *string       `json:"content"`
	Refusal          *string       `json:"refusal,omitempty"`
	ReasoningContent *string       `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
	Audio            *audioOut     `json:"audio,omitempty"`
}

type toolCallOut struct {
	index    int
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type audioOut struct {
	ID         string `json:"id"`
	Data       string `json:"data"`
	ExpiresAt  int64  `json:"expires_at,omitempty"`
	Transcript string `json:"transcript"`
}

// audioMerge concatenates base64 audio pieces by decoding them: pieces may be
// separately padded, so their text cannot simply be joined. Characters that
// do not yet make a full 4-byte group wait in tail for the next piece.
type audioMerge struct {
	seen       bool
	id         string
	expiresAt  int64
	transcript []byte
	pcm        []byte
	tail       []byte
}

func (a *audioMerge) add(d *audioDelta) error {
	a.seen = true
	if d.ID != "" {
		a.id = d.ID
	}
	if d.ExpiresAt != 0 {
		a.expiresAt = d.ExpiresAt
	}
	a.transcript = append(a.transcript, d.Transcript...)
	if d.Data == "" {
		return nil
	}
	s := append(a.tail, d.Data...)
	n := len(s) / 4 * 4
	if bytes.IndexByte(s, '=') >= 0 {
		n = len(s) // padded: this piece ends a group
	}
	out, err := base64.StdEncoding.AppendDecode(a.pcm, s[:n])
	if err != nil {
		return fmt.Errorf("audio data: %w", err)
	}
	a.pcm = out
	a.tail = append(a.tail[:0], s[n:]...)
	return nil
}

func (a *audioMerge) finish() (*audioOut, error) {
	if !a.seen {
		return nil, nil
	}
	if len(a.tail) > 0 { // an unpadded last group
		out, err := base64.RawStdEncoding.AppendDecode(a.pcm, a.tail)
		if err != nil {
			return nil, fmt.Errorf("audio data: %w", err)
		}
		a.pcm = out
	}
	return &audioOut{ID: a.id, Data: base64.StdEncoding.EncodeToString(a.pcm), ExpiresAt: a.expiresAt, Transcript: string(a.transcript)}, nil
}

// Info is what a whole answer says of itself.
type Info struct {
	// FinishReason is the first choice's; "" when a choice has none.
	FinishReason string
	Complete     bool // every choice has a finish_reason
	HasUsage     bool
	HasLogprobs  bool
}

// Why a stream could not be assembled.
var (
	// ErrIncomplete: the stream ended before every choice finished (or
	// before any did).
	ErrIncomplete = errors.New("the stream ended before the answer was complete")
)

// EventError is an error event inside a stream (an engine failing after
// its 200); Data is the event's JSON.
type EventError struct{ Data []byte }

func (e *EventError) Error() string { return "the stream carried an error event" }

// MalformedError is an event that is not an answer chunk, or audio that
// does not decode.
type MalformedError struct {
	What string
	Err  error
}

func (e *MalformedError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// Assemble merges the chunk stream in body into one document (its model
// replaced by model when set) and says what it holds. A read error is
// returned as it came.
func Assemble(body io.Reader, model string) ([]byte, Info, error) {
	rd := sse.NewReader(body)
	var (
		out      completion
		choices  []*choiceOut
		finished bool
		info     Info
		c        chunk
	)
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, Info{}, err
		}
		if ev.Done() {
			finished = true
			break
		}
		c = chunk{}
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			return nil, Info{}, &MalformedError{What: "the upstream sent a malformed stream event", Err: err}
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return nil, Info{}, &EventError{Data: slices.Clone(ev.Data)}
		}
		if out.ID == "" {
			out.ID, out.Created, out.Model, out.Object = c.ID, c.Created, c.Model, c.Object
		}
		if c.SystemFingerprint != "" {
			out.SystemFingerprint = c.SystemFingerprint
		}
		if len(c.Usage) > 0 && string(c.Usage) != "null" {
			out.Usage = append(out.Usage[:0], c.Usage...)
		}
		for i := range c.Choices {
			cc := &c.Choices[i]
			if len(cc.Logprobs) > 0 && string(cc.Logprobs) != "null" {
				info.HasLogprobs = true
			}
			ch := choiceAt(&choices, cc.Index)
			if err := mergeChoice(ch, cc); err != nil {
				return nil, Info{}, &MalformedError{What: "the upstream sent malformed audio", Err: err}
			}
			if cc.FinishReason != nil {
				finished = true
			}
		}
	}
	if !finished {
		return nil, Info{}, ErrIncomplete
	}
	for _, ch := range choices {
		ch.Logprobs = json.RawMessage("null")
		if ch.Message == nil {
			continue
		}
		a, err := ch.audio.finish()
		if err != nil {
			return nil, Info{}, &MalformedError{What: "the upstream sent malformed audio", Err: err}
		}
		ch.Message.Audio = a
		slices.SortFunc(ch.Message.ToolCalls, func(a, b toolCallOut) int { return a.index - b.index })
		// A stream's role chunk carries content "": a whole answer with
		// tool calls or audio and no text has content null.
		if m := ch.Message; m.Content != nil && *m.Content == "" && (len(m.ToolCalls) > 0 || m.Audio != nil) {
			m.Content = nil
		}
	}
	if out.Object != "text_completion" {
		out.Object = "chat.completion"
	}
	if model != "" {
		out.Model = model
	}
	out.Choices = choices
	if out.Choices == nil {
		out.Choices = []*choiceOut{}
	}
	info.HasUsage = len(out.Usage) > 0
	info.Complete = len(choices) > 0
	for i, ch := range choices {
		if ch.FinishReason == nil || *ch.FinishReason == "" {
			info.Complete = false
		} else if i == 0 {
			info.FinishReason = *ch.FinishReason
		}
	}
	doc, err := json.Marshal(&out)
	return doc, info, err
}

// choiceAt returns the choice with index i, adding it (in index order).
func choiceAt(choices *[]*choiceOut, i int) *choiceOut {
	for _, ch := range *choices {
		if ch.Index == i {
			return ch
		}
	}
	ch := &choiceOut{Index: i}
	*choices = append(*choices, ch)
	slices.SortFunc(*choices, func(a, b *choiceOut) int { return a.Index - b.Index })
	return ch
}

func mergeChoice(ch *choiceOut, cc *chunkChoice) error {
	if cc.FinishReason != nil {
		ch.FinishReason = cc.FinishReason
	}
	if cc.Text != nil { // completions
		if ch.Text == nil {
			ch.Text = new(string)
		}
		*ch.Text += *cc.Text
		return nil
	}
	if ch.Message == nil {
		ch.Message = &messageOut{Role: "assistant"}
	}
	m, d := ch.Message, &cc.Delta
	if d.Role != "" {
		m.Role = d.Role
	}
	appendTo(&m.Content, d.Content)
	appendTo(&m.Refusal, d.Refusal)
	appendTo(&m.ReasoningContent, d.ReasoningContent)
	for _, tc := range d.ToolCalls {
		var t *toolCallOut
		for k := range m.ToolCalls {
			if m.ToolCalls[k].index == tc.Index {
				t = &m.ToolCalls[k]
			}
		}
		if t == nil {
			m.ToolCalls = append(m.ToolCalls, toolCallOut{index: tc.Index, Type: "function"})
			t = &m.ToolCalls[len(m.ToolCalls)-1]
		}
		if tc.ID != "" {
			t.ID = tc.ID
		}
		if tc.Type != "" {
			t.Type = tc.Type
		}
		t.Function.Name += tc.Function.Name
		t.Function.Arguments += tc.Function.Arguments
	}
	if d.Audio != nil {
		return ch.audio.add(d.Audio)
	}
	return nil
}

// appendTo adds s to *dst, making *dst when it is the first piece.
func appendTo(dst **string, s *string) {
	if s == nil {
		return
	}
	if *dst == nil {
		*dst = new(string)
	}
	**dst += *s
}

// Inspect reads a whole (non-streaming) answer and says what it holds.
func Inspect(doc []byte) (Info, error) {
	var a struct {
		Choices []struct {
			Logprobs     json.RawMessage `json:"logprobs"`
			FinishReason *string         `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(doc, &a); err != nil {
		return Info{}, err
	}
	info := Info{Complete: len(a.Choices) > 0, HasUsage: len(a.Usage) > 0 && string(a.Usage) != "null"}
	for i, c := range a.Choices {
		if c.FinishReason == nil || *c.FinishReason == "" {
			info.Complete = false
		} else if i == 0 {
			info.FinishReason = *c.FinishReason
		}
		if len(c.Logprobs) > 0 && string(c.Logprobs) != "null" {
			info.HasLogprobs = true
		}
	}
	return info, nil
}

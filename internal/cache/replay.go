package cache

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/sse"
)

// An answer is kept in its non-streaming form: a streamed answer is
// assembled into it, and replayed as a stream when a client asks for one.
// The shapes below are OpenAI's (chat.completion and its chunks,
// text_completion); fields the gateway does not know pass through in Rest.

type answer struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
	Choices           []choice        `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type choice struct {
	Index        int             `json:"index"`
	Message      *message        `json:"message,omitempty"` // chat
	Text         *string         `json:"text,omitempty"`    // completions
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type message struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content"`
	Refusal          *string    `json:"refusal,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
	Audio            *audio     `json:"audio,omitempty"`
}

type toolCall struct {
	Index    *int     `json:"index,omitempty"` // chunks only
	ID       string   `json:"id,omitempty"`
	Type     string   `json:"type,omitempty"`
	Function function `json:"function"`
}

type function struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type audio struct {
	ID         string `json:"id,omitempty"`
	ExpiresAt  int64  `json:"expires_at,omitempty"`
	Data       string `json:"data,omitempty"`
	Transcript string `json:"transcript,omitempty"`
}

// chunk is one streamed event's JSON.
type chunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
	Choices           []chunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        *delta          `json:"delta,omitempty"` // chat
	Text         *string         `json:"text,omitempty"`  // completions
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// delta is a chat chunk's piece of the message: every field optional.
type delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
	Audio            *audio     `json:"audio,omitempty"`
}

// Reasons an answer is not kept.
var (
	ErrIncomplete = errors.New("cache: the answer is not complete (no finish_reason, or no [DONE])")
	ErrLogprobs   = errors.New("cache: answers with logprobs are not kept")
	ErrNoUsage    = errors.New("cache: the answer reported no usage")
)

// Check reads a non-streaming answer and returns its first choice's
// finish_reason, or why it is not to be kept: a choice without a
// finish_reason, logprobs, no usage.
func Check(body []byte) (finish string, err error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", err
	}
	return checked(&a)
}

func checked(a *answer) (string, error) {
	if len(a.Choices) == 0 {
		return "", ErrIncomplete
	}
	for _, c := range a.Choices {
		if c.FinishReason == nil || *c.FinishReason == "" {
			return "", ErrIncomplete
		}
		if len(c.Logprobs) > 0 && !bytes.Equal(c.Logprobs, []byte("null")) {
			return "", ErrLogprobs
		}
	}
	if len(a.Usage) == 0 || bytes.Equal(a.Usage, []byte("null")) {
		return "", ErrNoUsage
	}
	return *a.Choices[0].FinishReason, nil
}

// Assemble turns a complete SSE stream (every event, [DONE] included) into
// the non-streaming answer it stands for, and returns its first choice's
// finish_reason.
func Assemble(stream []byte) (body []byte, finish string, err error) {
	var a answer
	byIndex := map[int]*choice{}
	audioData := map[int][]byte{}
	done := false
	r := sse.NewReader(bytes.NewReader(stream))
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		data := ev.Data
		if ev.Done() {
			done = true
			break
		}
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, "", err
		}
		if a.Object == "" {
			a.ID, a.Created, a.Model, a.SystemFingerprint = c.ID, c.Created, c.Model, c.SystemFingerprint
			a.Object = "chat.completion"
			if c.Object == "text_completion" {
				a.Object = "text_completion"
			}
		}
		if len(c.Usage) > 0 && !bytes.Equal(c.Usage, []byte("null")) {
			a.Usage = c.Usage
		}
		for _, cc := range c.Choices {
			ch := byIndex[cc.Index]
			if ch == nil {
				ch = &choice{Index: cc.Index, Logprobs: json.RawMessage("null")}
				if a.Object == "chat.completion" {
					ch.Message = &message{Role: "assistant"}
				} else {
					ch.Text = new(string)
				}
				byIndex[cc.Index] = ch
			}
			if len(cc.Logprobs) > 0 && !bytes.Equal(cc.Logprobs, []byte("null")) {
				return nil, "", ErrLogprobs
			}
			if cc.FinishReason != nil && *cc.FinishReason != "" {
				ch.FinishReason = cc.FinishReason
			}
			if cc.Text != nil && ch.Text != nil {
				*ch.Text += *cc.Text
			}
			if d := cc.Delta; d != nil && ch.Message != nil {
				mergeDelta(ch.Message, d, audioData, cc.Index)
			}
		}
	}
	if !done {
		return nil, "", ErrIncomplete
	}
	for i, d := range audioData {
		byIndex[i].Message.Audio.Data = base64.StdEncoding.EncodeToString(d)
	}
	for _, ch := range byIndex {
		// A stream's role chunk carries content "": a whole answer with
		// tool calls or audio and no text has content null.
		if m := ch.Message; m != nil && m.Content != nil && *m.Content == "" && (len(m.ToolCalls) > 0 || m.Audio != nil) {
			m.Content = nil
		}
		a.Choices = append(a.Choices, *ch)
	}
	sort.Slice(a.Choices, func(i, j int) bool { return a.Choices[i].Index < a.Choices[j].Index })
	if finish, err = checked(&a); err != nil {
		return nil, "", err
	}
	body, err = json.Marshal(&a)
	return body, finish, err
}

// mergeDelta adds one chunk's delta d to the message m being assembled;
// audio pieces are decoded into audioData (base64 pieces need not join as
// text).
func mergeDelta(m *message, d *delta, audioData map[int][]byte, index int) {
	if d.Role != "" {
		m.Role = d.Role
	}
	appendPtr(&m.Content, d.Content)
	appendPtr(&m.Refusal, d.Refusal)
	appendPtr(&m.ReasoningContent, d.ReasoningContent)
	for _, tc := range d.ToolCalls {
		n := len(m.ToolCalls)
		if tc.Index != nil {
			n = *tc.Index
		}
		for len(m.ToolCalls) <= n {
			m.ToolCalls = append(m.ToolCalls, toolCall{})
		}
		t := &m.ToolCalls[n]
		if tc.ID != "" {
			t.ID = tc.ID
		}
		if tc.Type != "" {
			t.Type = tc.Type
		}
		if tc.Function.Name != "" {
			t.Function.Name = tc.Function.Name
		}
		t.Function.Arguments += tc.Function.Arguments
	}
	if au := d.Audio; au != nil {
		if m.Audio == nil {
			m.Audio = &audio{}
		}
		if au.ID != "" {
			m.Audio.ID = au.ID
		}
		if au.ExpiresAt != 0 {
			m.Audio.ExpiresAt = au.ExpiresAt
		}
		m.Audio.Transcript += au.Transcript
		if au.Data != "" {
			if b, err := base64.StdEncoding.DecodeString(au.Data); err == nil {
				audioData[index] = append(audioData[index], b...)
			}
		}
	}
}

func appendPtr(dst **string, s *string) {
	if s == nil {
		return
	}
	if *dst == nil {
		v := *s
		*dst = &v
		return
	}
	**dst += *s
}

// pieceBytes is about how much text one replayed chunk carries.
const pieceBytes = 64

// Replay writes the stream of a kept answer (body, its non-streaming
// form) to w as the engine would have: per choice a role chunk, the
// content in pieces, tool calls, audio, a finish chunk; then the usage
// chunk when usage is asked for; then [DONE].
func Replay(body []byte, usage bool) ([]byte, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	var out []byte
	emit := func(c *chunk) error {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		out = append(out, "data: "...)
		out = append(out, b...)
		out = append(out, "\n\n"...)
		return nil
	}
	object := "chat.completion.chunk"
	if a.Object == "text_completion" {
		object = "text_completion"
	}
	head := func(cs ...chunkChoice) *chunk {
		return &chunk{ID: a.ID, Object: object, Created: a.Created, Model: a.Model, SystemFingerprint: a.SystemFingerprint, Choices: cs}
	}
	null := json.RawMessage("null")
	for _, c := range a.Choices {
		if c.Text != nil { // completions
			for _, p := range pieces(*c.Text) {
				if err := emit(head(chunkChoice{Index: c.Index, Text: &p, Logprobs: null})); err != nil {
					return nil, err
				}
			}
			empty := ""
			if err := emit(head(chunkChoice{Index: c.Index, Text: &empty, Logprobs: null, FinishReason: c.FinishReason})); err != nil {
				return nil, err
			}
			continue
		}
		m := c.Message
		if m == nil {
			m = &message{Role: "assistant"}
		}
		empty := ""
		if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{Role: m.Role, Content: &empty}, Logprobs: null})); err != nil {
			return nil, err
		}
		for _, p := range pieces(deref(m.ReasoningContent)) {
			if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{ReasoningContent: &p}, Logprobs: null})); err != nil {
				return nil, err
			}
		}
		for _, p := range pieces(deref(m.Content)) {
			if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{Content: &p}, Logprobs: null})); err != nil {
				return nil, err
			}
		}
		if m.Refusal != nil {
			if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{Refusal: m.Refusal}, Logprobs: null})); err != nil {
				return nil, err
			}
		}
		if len(m.ToolCalls) > 0 {
			tcs := make([]toolCall, len(m.ToolCalls))
			for i, tc := range m.ToolCalls {
				tc.Index = &i
				tcs[i] = tc
			}
			if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{ToolCalls: tcs}, Logprobs: null})); err != nil {
				return nil, err
			}
		}
		if m.Audio != nil {
			if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{Audio: m.Audio}, Logprobs: null})); err != nil {
				return nil, err
			}
		}
		if err := emit(head(chunkChoice{Index: c.Index, Delta: &delta{}, Logprobs: null, FinishReason: c.FinishReason})); err != nil {
			return nil, err
		}
	}
	if usage && len(a.Usage) > 0 {
		u := head()
		u.Choices = []chunkChoice{}
		u.Usage = a.Usage
		if err := emit(u); err != nil {
			return nil, err
		}
	}
	out = append(out, "data: [DONE]\n\n"...)
	return out, nil
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

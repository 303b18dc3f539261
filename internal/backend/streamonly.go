package backend

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/sse"
)

// Deployments with StreamOnly (Model Studio's Omni models) refuse
// stream:false. A non-streaming request is sent with stream:true and the
// stream is read here and merged into the one chat.completion (or
// text_completion) document the client asked for.

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
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Text         *string    `json:"text"` // completions
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role             string          `json:"role"`
	Content          *string         `json:"content"`
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

// The aggregated document, in OpenAI's field order.

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
	Index        int         `json:"index"`
	Message      *messageOut `json:"message,omitempty"`
	Text         *string     `json:"text,omitempty"`
	Logprobs     *struct{}   `json:"logprobs"`
	FinishReason *string     `json:"finish_reason"`

	audio audioMerge
}

type messageOut struct {
	Role             string        `json:"role"`
	Content          *string       `json:"content"`
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

// aggregate reads the SSE stream of resp and returns a synthetic 200 with
// the merged JSON document. public, when set, replaces the model name; src
// is where an error event came from.
func (o *OpenAI) aggregate(resp *http.Response, src ErrorSource, public string) (*http.Response, error) {
	defer resp.Body.Close()
	doc, err := aggregateStream(resp.Body, src, public)
	if err != nil {
		return nil, err
	}
	h := http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(doc))}}
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		h.Set("X-Request-Id", id)
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(doc)),
		ContentLength: int64(len(doc)),
		Request:       resp.Request,
	}, nil
}

// aggregateStream merges an OpenAI chunk stream into one document. A stream
// that errors, carries an error event or ends before any finish_reason is a
// 502 (timeouts keep their own *apierror.Error).
func aggregateStream(body io.Reader, src ErrorSource, public string) ([]byte, error) {
	rd := sse.NewReader(body)
	var (
		out      completion
		choices  []*choiceOut
		finished bool
		c        chunk
	)
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ae *apierror.Error
			if errors.As(err, &ae) {
				return nil, ae
			}
			return nil, midStream("the upstream stream broke off", err)
		}
		if ev.Done() {
			finished = true
			break
		}
		c = chunk{}
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			return nil, midStream("the upstream sent a malformed stream event", err)
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			e := NormalizeError(src, http.StatusBadGateway, ev.Data)
			e.Status, e.Type = http.StatusBadGateway, apierror.TypeServer
			return nil, e
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
			ch := choiceAt(&choices, cc.Index)
			if err := mergeChoice(ch, cc); err != nil {
				return nil, midStream("the upstream sent malformed audio", err)
			}
			if cc.FinishReason != nil {
				finished = true
			}
		}
	}
	if !finished {
		return nil, midStream("the upstream stream ended before the answer was complete", io.ErrUnexpectedEOF)
	}
	for _, ch := range choices {
		if ch.Message == nil {
			continue
		}
		a, err := ch.audio.finish()
		if err != nil {
			return nil, midStream("the upstream sent malformed audio", err)
		}
		ch.Message.Audio = a
		slices.SortFunc(ch.Message.ToolCalls, func(a, b toolCallOut) int { return a.index - b.index })
	}
	switch out.Object {
	case "text_completion":
	default:
		out.Object = "chat.completion"
	}
	if public != "" {
		out.Model = public
	}
	out.Choices = choices
	if out.Choices == nil {
		out.Choices = []*choiceOut{}
	}
	return json.Marshal(&out)
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
	if d.Content != nil {
		if m.Content == nil {
			m.Content = new(string)
		}
		*m.Content += *d.Content
	}
	if d.ReasoningContent != nil {
		if m.ReasoningContent == nil {
			m.ReasoningContent = new(string)
		}
		*m.ReasoningContent += *d.ReasoningContent
	}
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

func midStream(msg string, err error) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: CodeUpstreamUnavailable,
		Message: msg, Upstream: true, Err: &ConnError{Err: err}}
}

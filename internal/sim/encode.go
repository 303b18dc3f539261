package sim

import (
	"strconv"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Streaming chunks are encoded by hand: they are the hot path of the
// zero-latency profile, and their shape is fixed.

// chunkEncoder builds the SSE events of one streamed response.
type chunkEncoder struct {
	chat   bool
	prefix []byte // `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
	buf    []byte
	lp     []byte // the next chunk's logprobs; empty: null
}

func newChunkEncoder(chat bool, id string, created int64, model string) *chunkEncoder {
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	p := make([]byte, 0, 128)
	p = append(p, `data: {"id":`...)
	p = jsonscan.AppendString(p, id)
	p = append(p, `,"object":"`...)
	p = append(p, object...)
	p = append(p, `","created":`...)
	p = strconv.AppendInt(p, created, 10)
	p = append(p, `,"model":`...)
	p = jsonscan.AppendString(p, model)
	p = append(p, `,"choices":[`...)
	return &chunkEncoder{chat: chat, prefix: p, buf: make([]byte, 0, 512)}
}

func (c *chunkEncoder) open(index int) {
	c.buf = append(c.buf, c.prefix...)
	c.buf = append(c.buf, `{"index":`...)
	c.buf = strconv.AppendInt(c.buf, int64(index), 10)
}

func (c *chunkEncoder) close(finish string) {
	c.buf = append(c.buf, `,"logprobs":`...)
	if len(c.lp) > 0 {
		c.buf = append(c.buf, c.lp...)
		c.lp = c.lp[:0]
	} else {
		c.buf = append(c.buf, "null"...)
	}
	c.buf = append(c.buf, `,"finish_reason":`...)
	if finish == "" {
		c.buf = append(c.buf, "null"...)
	} else {
		c.buf = jsonscan.AppendString(c.buf, finish)
	}
	c.buf = append(c.buf, "}]}\n\n"...)
}

// role appends the first chat chunk of a choice: the assistant role.
func (c *chunkEncoder) role(index int) {
	c.open(index)
	c.buf = append(c.buf, `,"delta":{"role":"assistant","content":""}`...)
	c.close("")
}

// token appends one token's chunk: chat content delta or completion text.
func (c *chunkEncoder) token(index int, text string) {
	c.open(index)
	if c.chat {
		c.buf = append(c.buf, `,"delta":{"content":`...)
		c.buf = jsonscan.AppendString(c.buf, text)
		c.buf = append(c.buf, '}')
	} else {
		c.buf = append(c.buf, `,"text":`...)
		c.buf = jsonscan.AppendString(c.buf, text)
	}
	c.close("")
}

// toolOpen appends the chunk that opens tool call n of a choice: its id,
// type and name, with empty arguments, as OpenAI streams them.
func (c *chunkEncoder) toolOpen(index, n int, id, name string) {
	c.open(index)
	c.buf = append(c.buf, `,"delta":{"tool_calls":[{"index":`...)
	c.buf = strconv.AppendInt(c.buf, int64(n), 10)
	c.buf = append(c.buf, `,"id":`...)
	c.buf = jsonscan.AppendString(c.buf, id)
	c.buf = append(c.buf, `,"type":"function","function":{"name":`...)
	c.buf = jsonscan.AppendString(c.buf, name)
	c.buf = append(c.buf, `,"arguments":""}}]}`...)
	c.close("")
}

// toolArgs appends a fragment of tool call n's arguments.
func (c *chunkEncoder) toolArgs(index, n int, fragment string) {
	c.open(index)
	c.buf = append(c.buf, `,"delta":{"tool_calls":[{"index":`...)
	c.buf = strconv.AppendInt(c.buf, int64(n), 10)
	c.buf = append(c.buf, `,"function":{"arguments":`...)
	c.buf = jsonscan.AppendString(c.buf, fragment)
	c.buf = append(c.buf, "}}]}"...)
	c.close("")
}

// audio appends one token's chat chunk of an audio answer: the transcript
// piece and the base64 audio piece, as OpenAI streams them.
func (c *chunkEncoder) audio(index int, id string, expiresAt int64, data []byte, transcript string) {
	c.open(index)
	c.buf = append(c.buf, `,"delta":{"audio":{"id":`...)
	c.buf = jsonscan.AppendString(c.buf, id)
	if expiresAt != 0 {
		c.buf = append(c.buf, `,"expires_at":`...)
		c.buf = strconv.AppendInt(c.buf, expiresAt, 10)
	}
	c.buf = append(c.buf, `,"data":"`...)
	c.buf = append(c.buf, data...) // base64: no escaping needed
	c.buf = append(c.buf, `","transcript":`...)
	c.buf = jsonscan.AppendString(c.buf, transcript)
	c.buf = append(c.buf, "}}"...)
	c.close("")
}

// finish appends a choice's last chunk, carrying its finish_reason.
func (c *chunkEncoder) finish(index int, reason string) {
	c.open(index)
	if c.chat {
		c.buf = append(c.buf, `,"delta":{}`...)
	} else {
		c.buf = append(c.buf, `,"text":""`...)
	}
	c.close(reason)
}

// usage appends the usage chunk (choices empty), sent when
// stream_options.include_usage is set.
func (c *chunkEncoder) usage(prompt, completion int) {
	c.buf = append(c.buf, c.prefix...)
	c.buf = append(c.buf, `],"usage":{"prompt_tokens":`...)
	c.buf = strconv.AppendInt(c.buf, int64(prompt), 10)
	c.buf = append(c.buf, `,"completion_tokens":`...)
	c.buf = strconv.AppendInt(c.buf, int64(completion), 10)
	c.buf = append(c.buf, `,"total_tokens":`...)
	c.buf = strconv.AppendInt(c.buf, int64(prompt+completion), 10)
	c.buf = append(c.buf, "}}\n\n"...)
}

// done appends the terminating event.
func (c *chunkEncoder) done() { c.buf = append(c.buf, "data: [DONE]\n\n"...) }

// errorEvent appends an error event (vLLM sends one when a stream fails
// after it started).
func (c *chunkEncoder) errorEvent(body []byte) {
	c.buf = append(c.buf, "data: "...)
	for len(body) > 0 && body[len(body)-1] == '\n' {
		body = body[:len(body)-1]
	}
	c.buf = append(c.buf, body...)
	c.buf = append(c.buf, "\n\n"...)
}

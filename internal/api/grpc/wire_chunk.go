package grpcapi

import (
	"bytes"
	"math"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// A stream's events are its hot path: one per token. Each is written from
// the engine's JSON straight into the protobuf wire format of
// ChatCompletionChunk, in one pass, with no message built and no
// reflection: half the cost of reading it into the message and
// marshalling that, one allocation instead of six
// (convert_bench_test.go). A whole chat answer is written the same way:
// ChatCompletionResponse numbers its fields as the chunk does, its
// choices' message as the chunk's delta. What it writes is what the
// reader reads into the message, field for field (wire_test.go holds the
// two to that).

// Field numbers, as in omnigate.proto.
const (
	fChunkID, fChunkObject, fChunkCreated, fChunkModel, fChunkChoices, fChunkUsage, fChunkFingerprint, fChunkTier = 1, 2, 3, 4, 5, 6, 7, 8
	fChoiceIndex, fChoiceDelta, fChoiceLogprobs, fChoiceFinish                                                    = 1, 2, 3, 4
	fMsgRole, fMsgContent, fMsgRefusal, fMsgToolCalls, fMsgAudio, fMsgReasoning                                   = 1, 2, 3, 4, 5, 6
	fCallIndex, fCallID, fCallType, fCallFunction                                                                 = 1, 2, 3, 4
	fFuncName, fFuncArguments                                                                                     = 1, 2
	fAudioID, fAudioData, fAudioExpires, fAudioTranscript                                                         = 1, 2, 3, 4
	fLogprobsContent, fLogprobsRefusal                                                                            = 1, 2
	fTokToken, fTokLogprob, fTokBytes, fTokTop                                                                    = 1, 2, 3, 4
	fUsagePrompt, fUsageCompletion, fUsageTotal, fUsagePromptDetails, fUsageCompletionDetails                     = 1, 2, 3, 4, 5
)

// chunkWriter writes one stream's events, reusing its buffers.
type chunkWriter struct {
	r     reader
	w     wire
	bytes []int64 // a token's bytes, before they are packed
	// message is the key of a choice's message: "delta" in a chunk,
	// "message" in a whole answer.
	message string
	// The events of one stream start alike: the same id, object, created
	// and model before "choices". head is the JSON of the last event up
	// to its "choices" key, headWire the wire written for it; an event
	// that starts with the same bytes is written from headWire on, its
	// JSON read from "choices" on (in rest, behind a '{'). What the
	// writer writes for a key depends on that key's value alone, so the
	// bytes are those written from the whole event.
	head, headWire, rest []byte
	resumed              bool // the event being written starts at "choices"
}

// write writes one chat.completion.chunk event's data as the wire format
// of ChatCompletionChunk; the bytes are cw's until the next call.
func (cw *chunkWriter) write(data []byte) ([]byte, error) {
	cw.message = "delta"
	if n := len(cw.head); n > 0 && len(data) > n && string(data[:n]) == string(cw.head) && bytes.HasPrefix(data[n:], choicesKey) {
		if b, ok := cw.delta(data[n:]); ok {
			return b, nil
		}
		cw.rest = append(append(cw.rest[:0], '{'), data[n:]...)
		cw.w.b = append(cw.w.b[:0], cw.headWire...)
		cw.resumed = true
		b, err := cw.answer(cw.rest)
		cw.resumed = false
		return b, err
	}
	cw.head = cw.head[:0]
	return cw.answer(data)
}

// delta writes, without the decoder, the event most of a stream is: a
// head like the last event's, then one choice whose delta is a piece of
// content and nothing else. rest is the event after its head; it must be
// exactly
//
//	"choices":[{"index":N,"delta":{"content":"S"}[,"logprobs":null][,"finish_reason":null]}]}
//
// with N of at most 9 digits and S valid UTF-8 without escapes or control
// bytes; the bytes are those answer writes for it. Any other event: ok is
// false.
func (cw *chunkWriter) delta(rest []byte) (b []byte, ok bool) {
	p, ok := bytes.CutPrefix(rest, deltaStart)
	if !ok {
		return nil, false
	}
	var index int64
	i := 0
	for ; i < len(p) && i < 10 && '0' <= p[i] && p[i] <= '9'; i++ {
		index = index*10 + int64(p[i]-'0')
	}
	if i == 0 || i == 10 || i > 1 && p[0] == '0' {
		return nil, false
	}
	if p, ok = bytes.CutPrefix(p[i:], deltaContent); !ok {
		return nil, false
	}
	j := bytes.IndexByte(p, '"')
	if j < 0 {
		return nil, false
	}
	content := p[:j]
	for _, c := range content {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(content) {
		return nil, false // the decoder's error to tell
	}
	if p, ok = bytes.CutPrefix(p[j+1:], []byte("}")); !ok {
		return nil, false
	}
	p, _ = bytes.CutPrefix(p, deltaLogprobs)
	p, _ = bytes.CutPrefix(p, deltaFinish)
	if string(p) != "}]}" {
		return nil, false
	}
	w := &cw.w
	w.b = append(w.b[:0], cw.headWire...)
	at := w.open(fChunkChoices)
	if index != 0 {
		w.varint(fChoiceIndex, index)
	}
	d := w.open(fChoiceDelta)
	w.str(fMsgContent, content, false)
	w.end(d)
	w.end(at)
	return w.b, true
}

var (
	choicesKey    = []byte(`"choices"`)
	deltaStart    = []byte(`"choices":[{"index":`)
	deltaContent  = []byte(`,"delta":{"content":"`)
	deltaLogprobs = []byte(`,"logprobs":null`)
	deltaFinish   = []byte(`,"finish_reason":null`)
)

// keepHead remembers the event's JSON before its "choices" key (key, in
// data), and the wire written for it, when the key follows others.
func (cw *chunkWriter) keepHead(key []byte) {
	d := &cw.r.d
	start := d.OffsetOf(key) - 1 // the key's opening quote
	data := d.Data()
	if cw.resumed || start < 2 || start+len(`"choices"`) > len(data) || string(data[start:start+len(`"choices"`)]) != `"choices"` {
		return
	}
	i := start - 1
	for i > 0 && isSpace(data[i]) {
		i--
	}
	if data[i] != ',' {
		return
	}
	cw.head = append(cw.head[:0], data[:start]...)
	cw.headWire = append(cw.headWire[:0], cw.w.b...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// writeChat writes a chat.completion answer as the wire format of
// ChatCompletionResponse, into b.
func writeChat(b, data []byte) ([]byte, error) {
	cw := chunkWriter{w: wire{b: b}, message: "message"}
	return cw.answer(data)
}

// answer writes a chunk or a whole answer (after cw.w.b when resumed).
func (cw *chunkWriter) answer(data []byte) ([]byte, error) {
	r, w := &cw.r, &cw.w
	r.reset(data)
	if !cw.resumed {
		w.b = w.b[:0]
	}
	err := r.object(func(key []byte) error {
		switch string(key) {
		case "id":
			return cw.str(fChunkID, false)
		case "object":
			return cw.str(fChunkObject, false)
		case "created":
			return cw.int(fChunkCreated, false, false)
		case "model":
			return cw.str(fChunkModel, false)
		case "choices":
			if cw.message == "delta" {
				cw.keepHead(key)
			}
			return r.array(func(int) error {
				at := w.open(fChunkChoices)
				err := r.object(func(key []byte) error {
					switch string(key) {
					case "index":
						return cw.int(fChoiceIndex, false, true)
					case cw.message:
						at := w.open(fChoiceDelta)
						err := cw.msg()
						w.end(at)
						return err
					case "logprobs":
						return cw.logprobs(fChoiceLogprobs)
					case "finish_reason":
						return cw.str(fChoiceFinish, false)
					}
					return nil
				})
				w.end(at)
				return err
			})
		case "usage":
			return cw.usage(fChunkUsage)
		case "system_fingerprint":
			return cw.str(fChunkFingerprint, false)
		case "service_tier":
			return cw.str(fChunkTier, false)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w.b, r.end()
}

// str writes the string at the reader, when it is one; opt (a field with
// presence) writes it even empty.
func (cw *chunkWriter) str(field int, opt bool) error {
	r := &cw.r
	if ok, err := r.is(jsonscan.String); !ok {
		return err
	}
	raw, esc, err := r.d.ReadRawString()
	if err == nil && (len(raw) > 0 || opt) {
		cw.w.str(field, raw, esc)
	}
	return err
}

// int writes the integer at the reader, when it is one, as reader.integer
// reads it (as an int32 with short); opt writes it even 0.
func (cw *chunkWriter) int(field int, opt, short bool) error {
	k, err := cw.r.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Number {
		_, err := cw.r.d.Skip()
		return err
	}
	n, err := cw.r.integer()
	if short {
		n = int64(int32(n))
	}
	if err == nil && (n != 0 || opt) {
		cw.w.varint(field, n)
	}
	return err
}

// float writes a double as reader.float reads it (null is NaN).
func (cw *chunkWriter) float(field int) error {
	f, err := cw.r.float()
	if err == nil && math.Float64bits(f) != 0 {
		cw.w.double(field, f)
	}
	return err
}

// lazy is a nested message opened with its first member, as the reader
// makes one: an empty JSON object is no message.
type lazy struct {
	at, field int
}

func (l *lazy) open(w *wire) {
	if l.at < 0 {
		l.at = w.open(l.field)
	}
}

func (l *lazy) end(w *wire) {
	if l.at >= 0 {
		w.end(l.at)
	}
}

// msg writes an answer's message or a delta.
func (cw *chunkWriter) msg() error {
	r, w := &cw.r, &cw.w
	return r.object(func(key []byte) error {
		switch string(key) {
		case "role":
			return cw.str(fMsgRole, false)
		case "content":
			return cw.str(fMsgContent, true)
		case "refusal":
			return cw.str(fMsgRefusal, true)
		case "reasoning_content":
			return cw.str(fMsgReasoning, true)
		case "tool_calls":
			return r.array(func(int) error {
				at := w.open(fMsgToolCalls)
				err := cw.toolCall()
				w.end(at)
				return err
			})
		case "audio":
			l := lazy{at: -1, field: fMsgAudio}
			err := r.object(func(key []byte) error {
				l.open(w)
				switch string(key) {
				case "id":
					return cw.str(fAudioID, false)
				case "data":
					return cw.str(fAudioData, false)
				case "expires_at":
					return cw.int(fAudioExpires, false, false)
				case "transcript":
					return cw.str(fAudioTranscript, false)
				}
				return nil
			})
			l.end(w)
			return err
		}
		return nil
	})
}

func (cw *chunkWriter) toolCall() error {
	r, w := &cw.r, &cw.w
	return r.object(func(key []byte) error {
		switch string(key) {
		case "index":
			return cw.int(fCallIndex, true, true)
		case "id":
			return cw.str(fCallID, false)
		case "type":
			return cw.str(fCallType, false)
		case "function":
			l := lazy{at: -1, field: fCallFunction}
			err := r.object(func(key []byte) error {
				l.open(w)
				switch string(key) {
				case "name":
					return cw.str(fFuncName, false)
				case "arguments":
					return cw.str(fFuncArguments, false)
				}
				return nil
			})
			l.end(w)
			return err
		}
		return nil
	})
}

// logprobs writes a choice's logprobs as field.
func (cw *chunkWriter) logprobs(field int) error {
	r, w := &cw.r, &cw.w
	l := lazy{at: -1, field: field}
	err := r.object(func(key []byte) error {
		l.open(w)
		switch string(key) {
		case "content":
			return cw.tokenLogprobs(fLogprobsContent)
		case "refusal":
			return cw.tokenLogprobs(fLogprobsRefusal)
		}
		return nil
	})
	l.end(w)
	return err
}

func (cw *chunkWriter) tokenLogprobs(field int) error {
	r, w := &cw.r, &cw.w
	return r.array(func(int) error {
		at := w.open(field)
		err := cw.tokenLogprob(true)
		w.end(at)
		return err
	})
}

// tokenLogprob writes a TokenLogprob (top: with its top_logprobs) or a
// TopLogprob, which share their first three fields.
func (cw *chunkWriter) tokenLogprob(top bool) error {
	r, w := &cw.r, &cw.w
	return r.object(func(key []byte) error {
		switch string(key) {
		case "token":
			return cw.str(fTokToken, false)
		case "logprob":
			return cw.float(fTokLogprob)
		case "bytes":
			cw.bytes = cw.bytes[:0]
			err := r.array(func(int) error {
				n, err := r.int32()
				cw.bytes = append(cw.bytes, int64(n))
				return err
			})
			w.packed(fTokBytes, cw.bytes)
			return err
		case "top_logprobs":
			if !top {
				return nil
			}
			return r.array(func(int) error {
				at := w.open(fTokTop)
				err := cw.tokenLogprob(false)
				w.end(at)
				return err
			})
		}
		return nil
	})
}

// usage writes a usage object as field; null or another value is none.
func (cw *chunkWriter) usage(field int) error {
	r, w := &cw.r, &cw.w
	k, err := r.d.Peek()
	if err != nil || k != jsonscan.Object {
		_, err := r.is(jsonscan.Object)
		return err
	}
	at := w.open(field)
	err = r.d.Object(func(key []byte) error {
		switch string(key) {
		case "prompt_tokens":
			return cw.int(fUsagePrompt, false, false)
		case "completion_tokens":
			return cw.int(fUsageCompletion, false, false)
		case "total_tokens":
			return cw.int(fUsageTotal, false, false)
		case "prompt_tokens_details", "completion_tokens_details":
			prompt := string(key) == "prompt_tokens_details"
			l := lazy{at: -1, field: fUsagePromptDetails}
			if !prompt {
				l.field = fUsageCompletionDetails
			}
			err := r.object(func(key []byte) error {
				l.open(w)
				f := detailField(prompt, key)
				if f == 0 {
					return nil
				}
				return cw.int(f, false, false)
			})
			l.end(w)
			return err
		}
		return nil
	})
	w.end(at)
	return err
}

// detailField is the field number of a usage details key, 0 when none.
func detailField(prompt bool, key []byte) int {
	if prompt {
		switch string(key) {
		case "cached_tokens":
			return 1
		case "audio_tokens":
			return 2
		}
		return 0
	}
	switch string(key) {
	case "reasoning_tokens":
		return 1
	case "audio_tokens":
		return 2
	case "accepted_prediction_tokens":
		return 3
	case "rejected_prediction_tokens":
		return 4
	}
	return 0
}

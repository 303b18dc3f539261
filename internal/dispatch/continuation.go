package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/request"
)

// Mid-stream failover. A chat stream whose model has a deployment able to
// continue a final assistant message (config: continuation) is recorded
// as it is relayed: its id and the text the client has. When its upstream
// dies after some chunks, Continue sends the request again, to another
// deployment that can continue, with that text as a final assistant
// message to continue from (vLLM's continue_final_message: true,
// add_generation_prompt: false) and max_tokens less what was delivered,
// and the front end relays the continuation into the same client stream:
// one id, no second role chunk, the final usage counting the whole answer.

// maxContinuedBody bounds the request a continuable stream keeps to send
// again: a larger one (images, audio) is not continued rather than held
// for the length of the stream.
const maxContinuedBody = 1 << 20

// maxContinuations bounds the continuations of one stream.
const maxContinuations = 3

// continuation is what a continuable stream keeps: the request as it was
// sent, and the record of what the client got.
type continuation struct {
	req  request.Request // the view of body
	body []byte
	rec  record
	n    int // continuations so far
}

// record reads the events relayed to the client. The front end writes
// whole events only to a continuable stream (Answer.Continuable), so a
// cut never leaves the client inside one.
type record struct {
	usage   *usageTap
	id      []byte // the stream's id (the JSON string's contents)
	text    []byte // the content delivered, still JSON-escaped
	tokens  int    // content chunks delivered: the engine's tokens
	finish  bool   // a finish_reason was delivered
	done    bool   // [DONE] was delivered
	stuck   bool   // tool calls or audio were delivered: text continuation cannot go on
	partial []byte // an event not yet whole
}

// Write reads the events of p (the usage tap sees p too).
func (r *record) Write(p []byte) {
	r.usage.Write(p)
	if len(r.partial) > 0 {
		r.partial = append(r.partial, p...)
		p = r.partial
	}
	for {
		i := bytes.Index(p, eventEnd)
		if i < 0 {
			break
		}
		r.event(p[:i])
		p = p[i+len(eventEnd):]
	}
	r.partial = append(r.partial[:0], p...)
}

var (
	eventEnd    = []byte("\n\n")
	dataPrefix  = []byte("data:")
	doneData    = []byte("[DONE]")
	idKey       = []byte(`"id":"`)
	contentKey  = []byte(`"content":"`)
	finishKey   = []byte(`"finish_reason":"`)
	toolsKey    = []byte(`"tool_calls"`)
	audioKey    = []byte(`"audio":{`)
	secondIndex = []byte(`"index":1`)
)

// event reads one event.
func (r *record) event(ev []byte) {
	ev = bytes.TrimSpace(ev)
	if !bytes.HasPrefix(ev, dataPrefix) {
		return // a comment, or another field
	}
	data := bytes.TrimSpace(ev[len(dataPrefix):])
	if bytes.Equal(data, doneData) {
		r.done = true
		return
	}
	if r.id == nil {
		if id, ok := stringAt(data, idKey); ok {
			r.id = append([]byte{}, id...)
		}
	}
	if bytes.Contains(data, toolsKey) || bytes.Contains(data, audioKey) || bytes.Contains(data, secondIndex) {
		r.stuck = true
	}
	if c, ok := stringAt(data, contentKey); ok && len(c) > 0 {
		r.text = append(r.text, c...)
		r.tokens++
	}
	if bytes.Contains(data, finishKey) {
		r.finish = true
	}
}

// stringAt returns the contents of the JSON string that follows key in
// data (key ends with its opening quote), still escaped.
func stringAt(data, key []byte) ([]byte, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return nil, false
	}
	s := data[i+len(key):]
	for j := 0; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return s[:j], true
		}
	}
	return nil, false
}

// continuable reports whether a stream of view to m is recorded for
// continuation.
func continuable(m *Model, view *request.Request, body []byte) bool {
	return view.Stream && view.Endpoint == request.Chat && view.N == 1 &&
		!view.AudioRequested && view.MessagesClose != [2]int{} && len(body) <= maxContinuedBody && anyContinues(m.Pool)
}

// anyContinues reports whether a deployment of pool can continue a final
// assistant message.
func anyContinues(pool []*balance.Deployment) bool {
	for _, d := range pool {
		if d.Config.CanContinue() {
			return true
		}
	}
	return false
}

// record starts the record of a continuable answer: a copy of the request
// as sent (the front end lets go of its own once a stream starts).
func (a *Answer) record(view *request.Request, body []byte) {
	a.cont = &continuation{req: *view, body: append([]byte(nil), body...)}
	a.cont.rec.usage = &a.usage
}

// Continuable reports whether the front end must write whole events only
// (and offer a broken stream to Continue).
func (a *Answer) Continuable() bool { return a.cont != nil }

// StreamDone reports whether the stream relayed so far ended as a stream
// must: with [DONE].
func (a *Answer) StreamDone() bool { return a.usage.done() }

// ErrStreamIncomplete is a stream that ended without [DONE]: cut, however
// cleanly its connection ended.
var ErrStreamIncomplete = &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: "upstream_stream_error",
	Message: "The upstream stream ended without [DONE].", Err: &backend.ConnError{Err: errors.New("stream ended without [DONE]")}}

// ErrStreamErrorEvent is a stream whose engine sent an error event after
// some chunks (vLLM, when its engine dies mid-answer).
var ErrStreamErrorEvent = &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: "upstream_stream_error",
	Message: "The upstream sent an error event mid-stream.", Err: &backend.ConnError{Err: errors.New("error event mid-stream")}}

// errNoContinuation marks a stream that cannot be continued; the front end
// then reports the original failure.
var errNoContinuation = errors.New("dispatch: the stream cannot be continued")

// Continue resumes the stream of a, which broke with cause after the client
// got what a recorded. On success a is over (its deployment charged with
// cause) and the returned answer carries the continuation, to be relayed
// into the same stream and passed to Done in a's place; a stream that had
// already finished (a finish_reason, only [DONE] missing) gets just the
// [DONE]. On failure a is untouched and the front end ends the stream
// with the error event of cause, never of the continuation's failure.
func (c *Core) Continue(ctx context.Context, call *Call, a *Answer, cause error) (*Answer, error) {
	k := a.cont
	if k == nil || k.rec.stuck || k.rec.done || k.n >= maxContinuations || ctx.Err() != nil {
		return nil, errNoContinuation
	}
	_, usageSeen := a.usage.usage()
	usageOnly := k.rec.finish // all of the answer came, but its usage, if asked for, or [DONE]
	if usageOnly && (usageSeen || !wantsUsage(&k.req, k.body)) {
		// Only [DONE] is missing: end the stream here. The deployment
		// answered; how its relay ended is judged at Done.
		a.Resp.Body.Close()
		a.Resp = doneResponse()
		return a, nil
	}
	view := k.req
	body := continueBody(&view, k.body, &k.rec)
	switch left := view.MaxTokens - k.rec.tokens; {
	case usageOnly:
		// The usage is what is missing: a continuation of one token at
		// most tells the prompt's size; its text is dropped.
		body = view.SetMaxTokens(body, 1)
	case view.MaxTokens > 0 && left <= 0:
		return nil, errNoContinuation // it ended by length: only its end was missing
	case view.MaxTokens > 0:
		body = view.SetMaxTokens(body, left)
	}
	var skip balance.Tried
	for i, d := range a.Model.Pool {
		if d == a.Deployment || !d.Config.CanContinue() {
			skip.Add(i)
		}
	}
	cut := c.clock.Now()
	next, err := c.sendFrom(ctx, call, a.Model, &view, body, nil, skip, true)
	if err != nil {
		return nil, err
	}
	a.Model.Metrics.Continued()
	call.st.stats.continuations++
	call.st.stats.upstream += cut.Sub(a.sent)
	k.n++
	resp := next.Resp
	resp.Body = newSplicer(resp.Body, &k.rec, usageOnly)
	// next carries the stream on, with a's record, usage and headers; a
	// is over, its deployment charged with cause.
	*next = Answer{Resp: resp, Model: a.Model, Deployment: next.Deployment, ticket: next.ticket, cancel: next.cancel,
		cont: k, usage: a.usage, Clamped: a.Clamped, FallbackReason: a.FallbackReason, Until: next.Until,
		permit: a.permit, sent: next.sent, tokens: next.tokens, logged: a.logged, fill: a.fill, Cache: a.Cache, span: next.span}
	k.rec.usage = &next.usage
	if a.cancel != nil {
		a.cancel()
	}
	c.endRelay(a, cause)
	*a = Answer{}
	c.answers.Put(a)
	return next, nil
}

// continueBody returns body with the delivered text as a final assistant
// message to continue from, and view describing it.
func continueBody(view *request.Request, body []byte, rec *record) []byte {
	msg := make([]byte, 0, len(rec.text)+40)
	msg = append(msg, `,{"role":"assistant","content":"`...)
	msg = append(msg, rec.text...)
	msg = append(msg, `"}]`...)
	return view.Edit(body,
		request.Edit{Span: view.MessagesClose, Value: msg},
		request.Insert(body, "continue_final_message", []byte(`true,"add_generation_prompt":false`)))
}

// wantsUsage reports whether the request asked for a final usage chunk
// (stream_options.include_usage true).
func wantsUsage(view *request.Request, body []byte) bool {
	sp := view.StreamOptionsSpan
	if sp == ([2]int{}) {
		return false
	}
	opts := body[sp[0]:sp[1]]
	i := bytes.Index(opts, []byte(`"include_usage"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(opts[i+len(`"include_usage"`):], " \t\r\n:")
	return bytes.HasPrefix(rest, []byte("true"))
}

// doneResponse is a stream holding only its end.
func doneResponse() *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(strings.NewReader("data: [DONE]\n\n")), ContentLength: -1}
}

// splicer is a continuation's stream rewritten to carry on the client's:
// the original id, no role chunk of its own, and usage counting the whole
// answer (the delivered tokens were prompt tokens to the continuation).
//
// With usageOnly, the client had the whole answer and lacked its usage:
// only the usage chunk (counting the delivered tokens as the completion)
// and [DONE] are passed on.
type splicer struct {
	body      io.ReadCloser
	br        *bufio.Reader
	rec       *record
	base      int // tokens delivered before this continuation
	usageOnly bool
	ev        []byte // the event being read
	out       []byte // rewritten bytes not yet read
	err       error
}

func newSplicer(body io.ReadCloser, rec *record, usageOnly bool) *splicer {
	return &splicer{body: body, br: bufio.NewReaderSize(body, 4<<10), rec: rec, base: rec.tokens, usageOnly: usageOnly}
}

// Read returns the rewritten stream, an event at a time.
func (s *splicer) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.next()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// Close closes the continuation's body.
func (s *splicer) Close() error { return s.body.Close() }

// next reads one event and rewrites it into out.
func (s *splicer) next() {
	s.ev = s.ev[:0]
	for {
		line, err := s.br.ReadSlice('\n')
		s.ev = append(s.ev, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			s.err = err
			if len(bytes.TrimSpace(s.ev)) > 0 && err == io.EOF {
				s.out = s.rewrite(s.ev) // a last event without its blank line
			}
			return
		}
		if len(bytes.TrimSpace(line)) == 0 { // the blank line that ends an event
			if len(bytes.TrimSpace(s.ev)) > 0 {
				s.out = s.rewrite(s.ev)
			}
			return
		}
	}
}

// rewrite returns ev as the client's stream carries it; nil drops it.
func (s *splicer) rewrite(ev []byte) []byte {
	t := bytes.TrimSpace(ev)
	if !bytes.HasPrefix(t, dataPrefix) {
		return ev
	}
	data := bytes.TrimSpace(t[len(dataPrefix):])
	if bytes.Equal(data, doneData) {
		return ev
	}
	var chunk map[string]json.RawMessage
	if json.Unmarshal(data, &chunk) != nil {
		return ev // not a chunk this knows: as it came
	}
	if s.rec.id != nil {
		chunk["id"] = append(append([]byte{'"'}, s.rec.id...), '"')
	}
	u, hasUsage := chunk["usage"]
	hasUsage = hasUsage && string(u) != "null"
	if s.usageOnly {
		if !hasUsage {
			return nil
		}
		chunk["choices"] = json.RawMessage("[]")
	}
	empty := s.dropRole(chunk)
	if hasUsage {
		chunk["usage"] = s.usage(u)
		empty = false
	}
	if empty {
		return nil
	}
	out, err := json.Marshal(chunk)
	if err != nil {
		return ev
	}
	return append(append([]byte("data: "), out...), '\n', '\n')
}

// dropRole removes the role the continuation's first delta announces (the
// client had it already) and reports whether the chunk is then empty: no
// content, no finish_reason, nothing else in its delta.
func (s *splicer) dropRole(chunk map[string]json.RawMessage) (empty bool) {
	var choices []map[string]json.RawMessage
	if json.Unmarshal(chunk["choices"], &choices) != nil || len(choices) != 1 {
		return false
	}
	var delta map[string]json.RawMessage
	if json.Unmarshal(choices[0]["delta"], &delta) != nil {
		return false
	}
	if _, ok := delta["role"]; !ok {
		return false
	}
	delete(delta, "role")
	if c, ok := delta["content"]; ok && (string(c) == `""` || string(c) == "null") {
		delete(delta, "content")
	}
	fin := choices[0]["finish_reason"]
	if len(delta) == 0 && (len(fin) == 0 || string(fin) == "null") {
		return true
	}
	choices[0]["delta"], _ = json.Marshal(delta)
	chunk["choices"], _ = json.Marshal(choices)
	return false
}

// usage moves the delivered tokens from the continuation's prompt to the
// completion, where the client's answer has them.
func (s *splicer) usage(raw json.RawMessage) json.RawMessage {
	var u map[string]json.RawMessage
	if json.Unmarshal(raw, &u) != nil {
		return raw
	}
	var prompt, completion int
	if json.Unmarshal(u["prompt_tokens"], &prompt) != nil || json.Unmarshal(u["completion_tokens"], &completion) != nil {
		return raw
	}
	prompt, completion = max(prompt-s.base, 0), completion+s.base
	if s.usageOnly {
		completion = s.base // the one token asked for is not the client's
	}
	u["prompt_tokens"], _ = json.Marshal(prompt)
	u["completion_tokens"], _ = json.Marshal(completion)
	u["total_tokens"], _ = json.Marshal(prompt + completion)
	out, _ := json.Marshal(u)
	return out
}

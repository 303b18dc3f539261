package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// choice is one answer of a request: the prompt it answers and its text.
type choice struct {
	index   int
	prompt  int      // prompt tokens
	blocks  []uint64 // the prompt's block hashes, for prefix caching
	seed    uint64   // what drew the answer (and its logprobs)
	ans     answer
	first   int // the position of ans.tokens[0] in the whole answer: >0 when continuing
	audioID string
}

// serveGen answers /v1/chat/completions (chat) and /v1/completions.
func (e *Engine) serveGen(w http.ResponseWriter, r *http.Request, chat bool) {
	plan, err := e.dice.plan(r.Header)
	id := e.newID("cmpl-")
	if chat {
		id = e.newID("chatcmpl-")
	}
	if err != nil {
		writeError(w, plan.dialect, id, err)
		return
	}
	if e.isClosed() {
		writeError(w, plan.dialect, id, errClosed)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, plan.dialect, id, err)
		return
	}
	var req *genRequest
	if chat {
		req, err = parseChat(body, &e.p)
	} else {
		req, err = parseCompletion(body, &e.p)
	}
	if err != nil {
		writeError(w, plan.dialect, id, err)
		return
	}
	if !e.knownModel(req.model) {
		writeError(w, plan.dialect, id, modelNotFound(req.model))
		return
	}
	choices, promptTokens, err := e.prepare(req)
	if err != nil {
		writeError(w, plan.dialect, id, err)
		return
	}
	ctx := r.Context()
	if e.inject(ctx, w, plan, id, req.stream) {
		return
	}
	g := &generation{e: e, w: w, req: req, plan: plan, id: id, created: e.clock.Now().Unix(), arrival: e.clock.Now(), choices: choices, promptTokens: promptTokens}
	e.metrics.prompt.Add(float64(promptTokens))
	if req.stream {
		g.stream(ctx)
	} else {
		g.whole(ctx)
	}
}

// prepare checks the context length and KV fit and draws every choice's
// answer. It returns the choices and the request's prompt tokens.
func (e *Engine) prepare(req *genRequest) ([]*choice, int, error) {
	what := "prompt"
	if req.chat {
		what = "messages"
	}
	var out []*choice
	total := 0
	for pi, p := range req.prompts {
		total += p.tokens
		limit := e.p.MaxModelLen - p.tokens
		switch {
		case req.maxTokens > 0 && p.tokens+req.maxTokens > e.p.MaxModelLen:
			return nil, 0, overflowError(p.tokens, req.maxTokens, e.p.MaxModelLen, what)
		case p.tokens >= e.p.MaxModelLen:
			return nil, 0, overflowError(p.tokens, 0, e.p.MaxModelLen, what)
		case req.maxTokens > 0:
			limit = req.maxTokens
		}
		for i := range req.n {
			c := &choice{index: pi*req.n + i, prompt: p.tokens, blocks: p.blocks, seed: e.quant.diverge(choiceSeed(p.hash, req.seed, req.temperature, i))}
			if req.cont != nil {
				if err := req.continueChoice(c, e.p.AnswerTokens, limit); err != nil {
					return nil, 0, err
				}
			} else {
				c.ans = req.answerFor(c.seed, e.p.AnswerTokens, limit)
			}
			if !e.fits(p.tokens + len(c.ans.tokens)) {
				return nil, 0, kvOverflowError(p.tokens, len(c.ans.tokens), e.p.KVCacheTokens, what)
			}
			if req.audio != nil && c.ans.calls == nil {
				c.audioID = "audio_" + e.newID("")
			}
			out = append(out, c)
		}
	}
	return out, total, nil
}

// answerFor draws one choice's answer: tool calls when the tools and
// tool_choice call for them, else JSON when response_format asks for it,
// else text.
func (r *genRequest) answerFor(seed uint64, lengths [2]int, limit int) answer {
	if len(r.tools) > 0 {
		if calls := r.callsFor(seed); len(calls) > 0 {
			return toolAnswer(seed, calls, limit)
		}
	}
	return r.draw(seed, lengths, limit, r.stops)
}

// draw draws a text answer, or JSON when response_format asks for it.
func (r *genRequest) draw(seed uint64, lengths [2]int, limit int, stops []string) answer {
	if r.format != nil {
		return r.format.answer(seed, lengths, limit, stops)
	}
	return generate(seed, lengths, limit, stops)
}

// run moves every choice through the engine and calls onToken for each
// token, in the order they are produced. It returns ctx's error when the
// client goes away (the sequences are then aborted, freeing their KV) and
// errClosed when the engine shuts down.
func (e *Engine) run(ctx context.Context, choices []*choice, slow time.Duration, onToken func(c *choice, k int)) error {
	done := ctx.Done()
	if e.sched == nil { // zero latency: no scheduler, no timers
		for _, c := range choices {
			for k := range c.ans.tokens {
				if !e.wait(done, slow) {
					return ctx.Err()
				}
				onToken(c, k)
			}
		}
		return nil
	}
	// A continuation of a finished answer has no token to generate; it
	// never enters the engine.
	choices = slices.DeleteFunc(slices.Clone(choices), func(c *choice) bool { return len(c.ans.tokens) == 0 })
	if len(choices) == 0 {
		return nil
	}
	st := newStream(len(choices))
	seqs := make([]*seq, len(choices))
	remaining := 0
	for i, c := range choices {
		seqs[i] = &seq{prompt: c.prompt, target: len(c.ans.tokens), hashes: c.blocks, out: st, idx: i}
		remaining += len(c.ans.tokens)
	}
	if err := e.sched.submit(seqs); err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished {
			e.sched.abort(seqs)
		}
	}()
	sent := make([]int, len(choices))
	var prog []int
	for remaining > 0 {
		select {
		case <-st.notify:
		case <-done:
			return ctx.Err()
		}
		var err error
		prog, err = st.progress(prog)
		for i, c := range choices {
			for ; sent[i] < prog[i]; sent[i]++ {
				if !e.wait(done, slow) {
					return ctx.Err()
				}
				onToken(c, sent[i])
				remaining--
			}
		}
		if err != nil {
			return err
		}
	}
	finished = true
	return nil
}

// generation is one chat or completion request being answered.
type generation struct {
	e            *Engine
	w            http.ResponseWriter
	req          *genRequest
	plan         faultPlan
	id           string
	created      int64
	arrival      time.Time
	choices      []*choice
	promptTokens int
	firstSeen    bool
}

func (g *generation) completionTokens() int {
	n := 0
	for _, c := range g.choices {
		n += len(c.ans.tokens)
	}
	return n
}

func (g *generation) sawToken() {
	if !g.firstSeen {
		g.firstSeen = true
		g.e.metrics.ttft.Observe(g.e.clock.Now().Sub(g.arrival).Seconds())
	}
}

func (g *generation) succeeded() {
	m := g.e.metrics
	m.e2e.Observe(g.e.clock.Now().Sub(g.arrival).Seconds())
	reason := g.choices[0].ans.finish
	if reason == "tool_calls" { // the engine stopped; the API layer names it
		reason = "stop"
	}
	m.success.WithLabelValues(reason).Inc()
	if g.e.sched == nil {
		m.generation.Add(float64(g.completionTokens()))
	}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// whole answers a non-streaming request once every token is produced.
func (g *generation) whole(ctx context.Context) {
	err := g.e.run(ctx, g.choices, g.plan.slow, func(*choice, int) { g.sawToken() })
	if err != nil {
		if ctx.Err() == nil {
			writeError(g.w, g.plan.dialect, g.id, err)
		}
		return
	}
	g.succeeded()
	u := usage{PromptTokens: g.promptTokens, CompletionTokens: g.completionTokens()}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	var body any
	if g.req.chat {
		type audioOut struct {
			ID         string `json:"id"`
			Data       string `json:"data"`
			ExpiresAt  int64  `json:"expires_at"`
			Transcript string `json:"transcript"`
		}
		type function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		}
		type toolCallOut struct {
			ID       string   `json:"id"`
			Type     string   `json:"type"`
			Function function `json:"function"`
		}
		type message struct {
			Role      string        `json:"role"`
			Content   *string       `json:"content"`
			ToolCalls []toolCallOut `json:"tool_calls,omitempty"`
			Audio     *audioOut     `json:"audio,omitempty"`
		}
		type chatChoice struct {
			Index        int             `json:"index"`
			Message      message         `json:"message"`
			Logprobs     json.RawMessage `json:"logprobs"`
			FinishReason string          `json:"finish_reason"`
		}
		out := make([]chatChoice, len(g.choices))
		for i, c := range g.choices {
			m := message{Role: "assistant", Content: &c.ans.text}
			switch {
			case c.ans.calls != nil: // OpenAI: content null beside tool calls
				m.Content = nil
				for _, tc := range c.ans.calls {
					m.ToolCalls = append(m.ToolCalls, toolCallOut{ID: tc.id, Type: "function", Function: function{Name: tc.name, Arguments: tc.args}})
				}
			case g.req.audio != nil: // OpenAI puts the text in the transcript only
				m.Content = nil
				m.Audio = &audioOut{ID: c.audioID, Data: audioWhole(g.req.audio.Format, c.ans.tokens), ExpiresAt: g.created + audioExpiry, Transcript: c.ans.text}
			}
			out[i] = chatChoice{Index: c.index, Message: m, Logprobs: g.logprobs(c), FinishReason: c.ans.finish}
		}
		body = struct {
			ID      string       `json:"id"`
			Object  string       `json:"object"`
			Created int64        `json:"created"`
			Model   string       `json:"model"`
			Choices []chatChoice `json:"choices"`
			Usage   usage        `json:"usage"`
		}{g.id, "chat.completion", g.created, g.e.name, out, u}
	} else {
		type textChoice struct {
			Index        int             `json:"index"`
			Text         string          `json:"text"`
			Logprobs     json.RawMessage `json:"logprobs"`
			FinishReason string          `json:"finish_reason"`
		}
		out := make([]textChoice, len(g.choices))
		for i, c := range g.choices {
			out[i] = textChoice{Index: c.index, Text: c.ans.text, Logprobs: g.logprobs(c), FinishReason: c.ans.finish}
		}
		body = struct {
			ID      string       `json:"id"`
			Object  string       `json:"object"`
			Created int64        `json:"created"`
			Model   string       `json:"model"`
			Choices []textChoice `json:"choices"`
			Usage   usage        `json:"usage"`
		}{g.id, "text_completion", g.created, g.e.name, out, u}
	}
	if g.plan.cutAfter > 0 { // a truncated body: headers promise more than arrives
		b, _ := json.Marshal(body)
		g.w.Header().Set("Content-Type", "application/json")
		g.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		g.w.Write(b[:len(b)/2])
		http.NewResponseController(g.w).Flush()
		panic(http.ErrAbortHandler)
	}
	writeJSON(g.w, body)
}

var null = json.RawMessage("null")

// logprobs is a whole answer's logprobs: null unless asked for, and for
// tool calls, which carry no content.
func (g *generation) logprobs(c *choice) json.RawMessage {
	switch {
	case !g.req.logprobs || c.ans.calls != nil:
		return null
	case g.req.chat:
		return appendChatLogprobs(nil, c.seed, c.ans.tokens, c.first, g.req.topLogprobs, g.e.quant.LogprobShift)
	}
	return appendCompletionLogprobs(nil, c.seed, c.ans.tokens, c.first, g.req.topLogprobs, 0, g.e.quant.LogprobShift)
}

// stream answers a streaming request, one SSE event per token.
func (g *generation) stream(ctx context.Context) {
	s := &sseWriter{w: g.w, rc: http.NewResponseController(g.w), cutAfter: g.plan.cutAfter,
		flushEach: g.e.sched != nil || g.plan.slow > 0,
		enc:       newChunkEncoder(g.req.chat, g.id, g.created, g.e.name)}
	started := make([]bool, len(g.choices))
	var offsets []int // completions logprobs: each choice's text offset
	if g.req.logprobs && !g.req.chat {
		offsets = make([]int, len(g.choices))
	}
	err := g.e.run(ctx, g.choices, g.plan.slow, func(c *choice, k int) {
		g.sawToken()
		i := c.index
		if g.req.chat && !started[i] {
			started[i] = true
			s.enc.role(i)
			s.event()
		}
		tok := c.ans.tokens[k]
		switch {
		case !g.req.logprobs || c.ans.calls != nil:
		case g.req.chat:
			s.enc.lp = appendChatLogprobs(s.enc.lp, c.seed, c.ans.tokens[k:k+1], c.first+k, g.req.topLogprobs, g.e.quant.LogprobShift)
		default:
			s.enc.lp = appendCompletionLogprobs(s.enc.lp, c.seed, c.ans.tokens[k:k+1], c.first+k, g.req.topLogprobs, offsets[i], g.e.quant.LogprobShift)
			offsets[i] += utf8.RuneCountInString(tok)
		}
		switch {
		case c.ans.calls != nil:
			j := c.ans.callAt(k)
			if tc := &c.ans.calls[j]; k == tc.first {
				s.enc.toolOpen(i, j, tc.id, tc.name)
			} else {
				s.enc.toolArgs(i, j, tok)
			}
		case g.req.audio != nil:
			var exp int64
			if k == 0 {
				exp = g.created + audioExpiry
			}
			s.enc.audio(i, c.audioID, exp, audioPiece(g.req.audio.Format, tok, k, len(c.ans.tokens)), tok)
		default:
			s.enc.token(i, tok)
		}
		s.event()
		if k == len(c.ans.tokens)-1 {
			s.enc.finish(i, c.ans.finish)
			s.event()
		}
		if s.flushEach {
			s.flush()
		}
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return // the client left; nobody to tell
	case err != nil && !s.started:
		writeError(g.w, g.plan.dialect, g.id, err)
		return
	case err != nil:
		_, b := errorBody(g.plan.dialect, g.id, err)
		s.enc.errorEvent(b)
	default:
		g.finishEmpty(s)
		g.succeeded()
		if g.req.includeUsage {
			s.enc.usage(g.promptTokens, g.completionTokens())
			s.event()
		}
	}
	s.enc.done()
	s.flush()
}

// finishEmpty sends the role and finish chunks of the choices that had no
// token to generate (a continuation of a finished answer), which run never
// reports.
func (g *generation) finishEmpty(s *sseWriter) {
	for _, c := range g.choices {
		if len(c.ans.tokens) > 0 {
			continue
		}
		if g.req.chat {
			s.enc.role(c.index)
			s.event()
		}
		s.enc.finish(c.index, c.ans.finish)
		s.event()
	}
}

// sseWriter sends a stream's events, flushing each one (or, for the
// zero-latency path, in batches), and cuts the connection when told to.
type sseWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	enc       *chunkEncoder
	started   bool
	events    int
	cutAfter  int
	flushEach bool
}

// event counts the event just encoded; after cutAfter events the
// connection is dropped without [DONE].
func (s *sseWriter) event() {
	s.events++
	if s.cutAfter > 0 && s.events >= s.cutAfter {
		s.flush()
		panic(http.ErrAbortHandler)
	}
	if len(s.enc.buf) > 32<<10 {
		s.write()
	}
}

func (s *sseWriter) write() {
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
	}
	if len(s.enc.buf) > 0 {
		s.w.Write(s.enc.buf)
		s.enc.buf = s.enc.buf[:0]
	}
}

func (s *sseWriter) flush() {
	s.write()
	s.rc.Flush()
}

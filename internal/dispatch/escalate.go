package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/request"
)

// Escalation retries on the large tier a request automatic routing sent
// to the small one, when the small tier's whole answer is weak
// (routing.auto.escalate). The client gets one answer.
type Escalation struct {
	Small, Large *Model
	// The tests, as routing.auto.escalate.on names them.
	Length, Refusal, InvalidJSON, LowLogprob bool
	MinLogprob                               float64
}

// maxWeighed bounds the small answer read to weigh it; a larger one is
// passed on as it is.
const maxWeighed = 4 << 20

// escalates reports whether call, routed automatically to m first, is
// one e may escalate: a whole answer, from its small tier.
func (e *Escalation) escalates(call *Call, m *Model) bool {
	return e != nil && m == e.Small && !call.Req.Stream && call.Req.Endpoint == request.Chat && call.Req.N <= 1
}

// askLogprobs makes call ask the engine for logprobs (for the low_logprob
// test) when the client did not, and returns what undoes it.
func (c *Core) askLogprobs(call *Call) (undo func()) {
	req, body := call.Req, call.Body
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return func() {}
	}
	spliced := make([]byte, 0, len(body)+len(`"logprobs":true,`))
	spliced = append(append(append(spliced, body[:i+1]...), `"logprobs":true,`...), body[i+1:]...)
	view := c.views.Get().(*request.Request)
	if request.Parse(request.Chat, spliced, view) != nil {
		c.views.Put(view)
		return func() {}
	}
	call.Req, call.Body = view, spliced
	return func() {
		call.Req, call.Body = req, body
		c.views.Put(view)
	}
}

// weigh reads a's whole answer and returns why it is weak ("" when it is
// not) and the usage it reports, with a's body replaced by the bytes
// read, stripped of the logprobs the client did not ask for (strip).
func (e *Escalation) weigh(a *Answer, wantJSON, strip bool) (string, Usage, error) {
	var u Usage
	b, err := io.ReadAll(io.LimitReader(a.Resp.Body, maxWeighed+1))
	a.Resp.Body.Close()
	if err != nil {
		return "", u, err
	}
	if len(b) > maxWeighed {
		a.Resp.Body = io.NopCloser(bytes.NewReader(b)) // too long to weigh: passed on as it came
		return "", u, nil
	}
	var doc struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content *string `json:"content"`
				Refusal *string `json:"refusal"`
			} `json:"message"`
			Logprobs *struct {
				Content []struct {
					Logprob float64 `json:"logprob"`
				} `json:"content"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	why := ""
	if json.Unmarshal(b, &doc) == nil && len(doc.Choices) > 0 {
		u = Usage{PromptTokens: doc.Usage.PromptTokens, CompletionTokens: doc.Usage.CompletionTokens}
		ch := doc.Choices[0]
		text := ""
		if ch.Message.Content != nil {
			text = *ch.Message.Content
		}
		switch {
		case e.Length && ch.FinishReason == "length":
			why = "length"
		case e.Refusal && (ch.Message.Refusal != nil && *ch.Message.Refusal != "" || refuses(text)):
			why = "refusal"
		case e.InvalidJSON && wantJSON && !json.Valid([]byte(strings.TrimSpace(text))):
			why = "invalid_json"
		case e.LowLogprob && ch.Logprobs != nil && len(ch.Logprobs.Content) > 0:
			sum := 0.0
			for _, t := range ch.Logprobs.Content {
				sum += t.Logprob
			}
			if mean := sum / float64(len(ch.Logprobs.Content)); mean < e.MinLogprob && !math.IsNaN(mean) {
				why = "low_logprob"
			}
		}
	}
	if strip && why == "" {
		b = stripLogprobs(b)
	}
	a.Resp.Body = io.NopCloser(bytes.NewReader(b))
	a.Resp.ContentLength = int64(len(b))
	a.Resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return why, u, nil
}

// refusals start the answers of a model that declines.
var refusals = []string{"i'm sorry", "i am sorry", "i cannot", "i can't", "i can not", "i'm unable", "i am unable", "as an ai"}

func refuses(text string) bool {
	t := strings.ToLower(strings.TrimSpace(text))
	for _, r := range refusals {
		if strings.HasPrefix(t, r) {
			return true
		}
	}
	return false
}

// stripLogprobs sets every choice's logprobs to null: the gateway asked
// for them, the client did not. The answer is re-encoded (only here).
func stripLogprobs(b []byte) []byte {
	var doc map[string]json.RawMessage
	if json.Unmarshal(b, &doc) != nil {
		return b
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(doc["choices"], &choices) != nil {
		return b
	}
	for _, ch := range choices {
		if _, ok := ch["logprobs"]; ok {
			ch["logprobs"] = json.RawMessage("null")
		}
	}
	doc["choices"], _ = json.Marshal(choices)
	out, err := json.Marshal(doc)
	if err != nil {
		return b
	}
	return out
}

// escalate weighs a, the small tier's answer to call, and when it is weak
// asks the large tier instead: it returns the answer to relay, which is
// a (its body now read and kept) when it is not weak or the large tier
// cannot answer either.
func (c *Core) escalate(ctx context.Context, call *Call, e *Escalation, a *Answer, strip bool) *Answer {
	why, small, err := e.weigh(a, call.Req.JSONOut, strip)
	if err != nil || why == "" {
		if err != nil {
			c.log.Warn("small answer not weighed", "request_id", call.RequestID, "err", err)
		}
		return a
	}
	b, err, _ := c.tryModel(ctx, call, e.Large, true, nil)
	if err != nil {
		c.log.Info("escalation failed; the small answer stands", "request_id", call.RequestID, "reason", why, "err", err)
		return a
	}
	c.metrics.Escalated(e.Small.Name, e.Large.Name, why)
	if a.Deployment != nil {
		a.Model.Metrics.Tokens(a.Deployment.Config.Name, small.PromptTokens, small.CompletionTokens)
	}
	b.Escalated = e.Small.Name + "; reason=" + why + "; prompt_tokens=" + strconv.FormatInt(small.PromptTokens, 10) +
		"; completion_tokens=" + strconv.FormatInt(small.CompletionTokens, 10)
	c.release(a, nil)
	return b
}

// release ends an answer whose relay ended with err (or that the client
// will not get: the small tier's, escalated): its deployment is told how
// it went, its places are freed, and it goes back to the pool.
func (c *Core) release(a *Answer, err error) {
	if a.cancel != nil {
		a.cancel()
	}
	if a.Deployment != nil { // nil: served by the cache
		c.endRelay(a, err)
	}
	a.permit.Release(0, false) // its time to first token was observed when it came
	if u, ok := a.usage.usage(); ok && err == nil && u.CompletionTokens > 0 && !a.sent.IsZero() {
		a.Deployment.ObservePerToken(c.clock.Now().Sub(a.sent) / time.Duration(u.CompletionTokens))
	}
	*a = Answer{}
	c.answers.Put(a)
}

package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
)

// Target is one thing being evaluated: a model name sent to a gateway.
type Target struct {
	// Name is how the report shows it ("qwen3-omni-7b", "qwen3-omni-7b/sim-int4").
	Name string
	// Model is the request's model field.
	Model string
	// URL is the gateway's base URL, without /v1.
	URL string
	// APIKey, when set, is sent as a bearer token.
	APIKey string
	// Client sends the requests; nil: http.DefaultClient.
	Client *http.Client
}

// Options are how a target is asked.
type Options struct {
	// Concurrency is the requests in flight at once; default 8.
	Concurrency int
	// Timeout bounds one request; 0: none beyond the context's.
	Timeout time.Duration
	// Clock times the requests; default the wall clock.
	Clock clock.Clock
}

// Answer is a target's answer to one item.
type Answer struct {
	ID   string `json:"id"`
	Text string `json:"answer"`
	// Error is why there is no answer: the gateway's status and message,
	// or the transport's error. "": answered.
	Error string `json:"error,omitempty"`
	// Correct is whether Text matches the item's reference; nil when the
	// item has none or was not answered.
	Correct *bool         `json:"correct,omitempty"`
	Latency time.Duration `json:"-"`
	// MeanLogprob is the mean of the answer's token logprobs; nil when it
	// came without them.
	MeanLogprob      *float64 `json:"mean_logprob,omitempty"`
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
}

// Run is one target's answers, in the items' order.
type Run struct {
	Target  string
	Answers []Answer
	// Notes say what was changed on the way (logprobs dropped).
	Notes []string
}

// Ask sends every item to t, o.Concurrency at a time, and returns the
// answers. A failed request is an answer with Error set, not an error:
// the report counts them. When the gateway answers 400 naming logprobs
// (a model that does not give them), logprobs are dropped for the rest
// of the run and the item asked again, once; Run.Notes says so.
func Ask(ctx context.Context, t Target, items []Item, o Options) Run {
	if o.Concurrency < 1 {
		o.Concurrency = 8
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	a := &asker{t: t, o: o}
	if a.t.Client == nil {
		a.t.Client = http.DefaultClient
	}
	a.logprobs.Store(true)
	run := Run{Target: t.Name, Answers: make([]Answer, len(items))}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(o.Concurrency, len(items)) {
		wg.Go(func() {
			for i := range next {
				run.Answers[i] = a.ask(ctx, &items[i])
			}
		})
	}
feed:
	for i := range items {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(items); j++ {
				run.Answers[j] = Answer{ID: items[j].ID, Error: ctx.Err().Error()}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	if n := a.dropped.Load(); n != nil {
		run.Notes = append(run.Notes, "logprobs dropped: "+*n)
	}
	return run
}

// asker holds one target's run state.
type asker struct {
	t        Target
	o        Options
	logprobs atomic.Bool            // still asking for logprobs
	dropped  atomic.Pointer[string] // why logprobs were dropped
}

// chatRequest is the body sent for an item.
type chatRequest struct {
	Model       string          `json:"model"`
	Messages    json.RawMessage `json:"messages"`
	Temperature float64         `json:"temperature"`
	MaxTokens   int             `json:"max_tokens"`
	Logprobs    bool            `json:"logprobs,omitempty"`
}

// chatResponse is what is read of an answer.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Logprob float64 `json:"logprob"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// errorBody is the OpenAI error shape.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// ask asks one item, once more without logprobs if they are refused.
func (a *asker) ask(ctx context.Context, it *Item) Answer {
	for {
		withLogprobs := a.logprobs.Load()
		ans, refused := a.send(ctx, it, withLogprobs)
		if refused == "" {
			if ans.Error == "" && it.Reference != "" {
				ok := it.Correct(ans.Text)
				ans.Correct = &ok
			}
			return ans
		}
		if a.logprobs.CompareAndSwap(true, false) {
			note := fmt.Sprintf("the gateway refused them (%s), so no logprob difference involves this target", refused)
			a.dropped.Store(&note)
		}
	}
}

// send makes one request. refused is the gateway's message when it
// answered 400 naming logprobs to a request asking for them.
func (a *asker) send(ctx context.Context, it *Item, withLogprobs bool) (ans Answer, refused string) {
	ans.ID = it.ID
	body, err := json.Marshal(chatRequest{Model: a.t.Model, Messages: it.Messages, MaxTokens: it.MaxTokens, Logprobs: withLogprobs})
	if err != nil {
		ans.Error = err.Error()
		return ans, ""
	}
	if a.o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.o.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.t.URL, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		ans.Error = err.Error()
		return ans, ""
	}
	req.Header.Set("Content-Type", "application/json")
	if a.t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+a.t.APIKey)
	}
	start := a.o.Clock.Now()
	resp, err := a.t.Client.Do(req)
	if err != nil {
		ans.Error = err.Error()
		return ans, ""
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ans.Latency = a.o.Clock.Now().Sub(start)
	if err != nil {
		ans.Error = fmt.Sprintf("reading the answer: %v", err)
		return ans, ""
	}
	if resp.StatusCode != http.StatusOK {
		msg, param := errorMessage(b)
		if withLogprobs && resp.StatusCode == http.StatusBadRequest && namesLogprobs(msg, param) {
			return ans, msg
		}
		ans.Error = fmt.Sprintf("%d: %s", resp.StatusCode, msg)
		return ans, ""
	}
	var cr chatResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		ans.Error = fmt.Sprintf("the answer is not JSON: %v", err)
		return ans, ""
	}
	if len(cr.Choices) == 0 {
		ans.Error = "the answer has no choices"
		return ans, ""
	}
	c := cr.Choices[0]
	if c.Message.Content != nil {
		ans.Text = *c.Message.Content
	}
	if c.Logprobs != nil && len(c.Logprobs.Content) > 0 {
		var sum float64
		for _, t := range c.Logprobs.Content {
			sum += t.Logprob
		}
		m := sum / float64(len(c.Logprobs.Content))
		ans.MeanLogprob = &m
	}
	if cr.Usage != nil {
		ans.PromptTokens, ans.CompletionTokens = cr.Usage.PromptTokens, cr.Usage.CompletionTokens
	}
	return ans, ""
}

// errorMessage reads an error answer's message and param; a body not in
// the OpenAI shape is its own message, shortened.
func errorMessage(b []byte) (msg, param string) {
	var e errorBody
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		return e.Error.Message, param
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s, ""
}

// namesLogprobs reports whether a 400's param or message is about
// logprobs: the param when the gateway or engine sets it, the message
// for engines that give none.
func namesLogprobs(msg, param string) bool {
	if param != "" {
		return param == "logprobs" || param == "top_logprobs"
	}
	return strings.Contains(strings.ToLower(msg), "logprobs")
}

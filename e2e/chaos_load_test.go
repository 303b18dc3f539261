package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is the traffic of one scenario: requests sent by concurrency
// clients, each sending its next as soon as the last one ended.
type loadSpec struct {
	requests    int
	concurrency int
	stream      bool
}

// loadResult is what the clients saw.
type loadResult struct {
	sent, ok int
	// failed counts the failed requests by status; a stream that ended
	// with a well-formed error event counts under its error code.
	failed map[string]int
	// texts counts the whole streams' texts.
	texts map[string]int
	// broken are answers that break the contract whatever the fault: an
	// error body that is not the OpenAI JSON (an HTML page), a stream
	// that ends with neither [DONE] nor an error event, a connection
	// dropped on the client. The first few, described.
	broken []string
	took   time.Duration
}

// failures is the number of failed requests.
func (r *loadResult) failures() int {
	n := 0
	for _, c := range r.failed {
		n += c
	}
	return n
}

// add merges o into r.
func (r *loadResult) add(o loadResult) {
	r.sent += o.sent
	r.ok += o.ok
	r.took += o.took
	for k, v := range o.failed {
		if r.failed == nil {
			r.failed = map[string]int{}
		}
		r.failed[k] += v
	}
	r.broken = append(r.broken, o.broken...)
}

// failedString renders failed as "502 upstream_stream_error: 3, 504: 1".
func (r *loadResult) failedString() string {
	if len(r.failed) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(r.failed))
	for k := range r.failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d × %s", r.failed[k], k)
	}
	return strings.Join(parts, ", ")
}

// loader sends a scenario's traffic to the gateway at base for model.
type loader struct {
	base, model string
	client      *http.Client
	done        atomic.Int64 // requests answered so far

	mu  sync.Mutex
	res loadResult
}

// newLoader returns a loader with a connection pool of its own.
func newLoader(base, model string) *loader {
	return &loader{base: base, model: model, client: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		Timeout:   30 * time.Second, // no request of the suite needs more; a hang fails it
	}}
}

// run sends spec's requests, and goes on while more (nil: never) holds,
// up to maxLoadFactor times as many; it returns what they got.
func (l *loader) run(spec loadSpec, more func() bool) loadResult {
	l.mu.Lock()
	l.res = loadResult{failed: map[string]int{}, texts: map[string]int{}}
	l.mu.Unlock()
	var next atomic.Int64
	goOn := func() bool {
		n := next.Add(1)
		return n <= int64(spec.requests) || (more != nil && more() && n <= int64(maxLoadFactor*spec.requests))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range spec.concurrency {
		wg.Go(func() {
			for goOn() {
				l.one(spec.stream)
				l.done.Add(1)
			}
		})
	}
	wg.Wait()
	l.client.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.took = time.Since(start)
	return l.res
}

// maxLoadFactor bounds a load that goes on while a fault needs traffic.
const maxLoadFactor = 20

// waitDone blocks until n requests were answered (of this loader's life).
func (l *loader) waitDone(n int) {
	poll(time.Minute, func() bool { return l.done.Load() >= int64(n) })
}

// one sends one request and records the outcome.
func (l *loader) one(stream bool) {
	body := fmt.Sprintf(`{"model":%q,"stream":%t,"max_tokens":8,"messages":[{"role":"user","content":"hello"}]}`, l.model, stream)
	resp, err := l.client.Post(l.base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		l.record(answer{broken: fmt.Sprintf("no answer: %v", err)})
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		l.record(answer{broken: fmt.Sprintf("%d, body cut on the client: %v after %q", resp.StatusCode, err, tail(string(b), 200))})
		return
	}
	l.record(judgeAnswer(resp, b, stream))
}

// answer is how one request went: ok (a stream's text with it), failed
// (the status and code), or broken (what is wrong with it).
type answer struct {
	ok             bool
	text           string
	failed, broken string
}

// record counts one answer.
func (l *loader) record(a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.sent++
	switch {
	case a.broken != "":
		l.res.failed["broken"]++
		if len(l.res.broken) < 5 {
			l.res.broken = append(l.res.broken, a.broken)
		}
	case a.ok:
		l.res.ok++
		if a.text != "" {
			l.res.texts[a.text]++
		}
	default:
		l.res.failed[a.failed]++
	}
}

// judgeAnswer classifies one whole answer.
func judgeAnswer(resp *http.Response, b []byte, stream bool) answer {
	if resp.StatusCode != http.StatusOK {
		code, err := errorCode(b)
		if err != nil {
			return answer{broken: fmt.Sprintf("%d with a body that is not an OpenAI error: %v: %q", resp.StatusCode, err, tail(string(b), 200))}
		}
		return answer{failed: strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, code))}
	}
	if !stream {
		var c struct {
			Object  string
			Choices []json.RawMessage
		}
		if err := json.Unmarshal(b, &c); err != nil || c.Object != "chat.completion" || len(c.Choices) == 0 {
			return answer{broken: fmt.Sprintf("200 that is not a chat completion: %q", tail(string(b), 200))}
		}
		return answer{ok: true}
	}
	return judgeStream(b)
}

// judgeStream classifies a 200 event stream: whole (ends with [DONE],
// with one id, one role chunk and one finish_reason), failed (ends with
// one well-formed error event and no [DONE]), or broken.
func judgeStream(b []byte) answer {
	if !bytes.HasSuffix(b, []byte("\n\n")) {
		return answer{broken: fmt.Sprintf("stream cut mid-event: %q", tail(string(b), 200))}
	}
	var sum streamSummary
	events := bytes.Split(bytes.TrimSuffix(b, []byte("\n\n")), []byte("\n\n"))
	for i, ev := range events {
		data, isData := bytes.CutPrefix(ev, []byte("data: "))
		last := i == len(events)-1
		switch {
		case !isData:
			return answer{broken: fmt.Sprintf("not a data event: %q", ev)}
		case bytes.Equal(data, []byte("[DONE]")) && last:
			if err := sum.whole(); err != nil {
				return answer{broken: fmt.Sprintf("%v: %q", err, tail(string(b), 300))}
			}
			return answer{ok: true, text: sum.text.String()}
		case bytes.HasPrefix(data, []byte(`{"error"`)) && !last:
			return answer{broken: fmt.Sprintf("an error event followed by more: %q", tail(string(b), 300))}
		case bytes.HasPrefix(data, []byte(`{"error"`)):
			code, err := errorCode(data)
			if err != nil {
				return answer{broken: fmt.Sprintf("a malformed error event: %v: %q", err, data)}
			}
			return answer{failed: "stream " + code}
		}
		if err := sum.add(data); err != nil {
			return answer{broken: fmt.Sprintf("event %d: %v: %q", i, err, data)}
		}
	}
	return answer{broken: fmt.Sprintf("stream ended with neither [DONE] nor an error event: %q", tail(string(b), 200))}
}

// streamSummary is what a stream's chunks said.
type streamSummary struct {
	ids             map[string]bool
	roles, finishes int
	text            strings.Builder
}

// add reads one chunk.
func (s *streamSummary) add(data []byte) error {
	var c struct {
		ID      string
		Choices []struct {
			Delta struct {
				Role    string
				Content string
			}
			FinishReason *string `json:"finish_reason"`
		}
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[c.ID] = true
	for _, ch := range c.Choices {
		if ch.Delta.Role != "" {
			s.roles++
		}
		if ch.FinishReason != nil {
			s.finishes++
		}
		s.text.WriteString(ch.Delta.Content)
	}
	return nil
}

// whole reports what is wrong with a stream that ended with [DONE].
func (s *streamSummary) whole() error {
	if len(s.ids) != 1 || s.roles != 1 || s.finishes != 1 {
		return fmt.Errorf("a stream with %d ids, %d role chunks and %d finish reasons, want one of each", len(s.ids), s.roles, s.finishes)
	}
	return nil
}

// errorCode is the code of an OpenAI error body, which must have a
// message; an error when b is not one.
func errorCode(b []byte) (string, error) {
	var e struct {
		Error *struct {
			Message string
			Code    *string
		}
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return "", err
	}
	if e.Error == nil || e.Error.Message == "" {
		return "", fmt.Errorf("no error object with a message")
	}
	if e.Error.Code == nil {
		return "", nil
	}
	return *e.Error.Code, nil
}

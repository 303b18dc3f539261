package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// streamed is what a client read from a chat stream.
type streamed struct {
	text, finish string
	ids          map[string]bool
	roles        int // chunks announcing the role
	usage        struct{ Prompt, Completion, Total int }
	done         bool   // [DONE] came
	errEvent     string // an error event's message
}

// readStream reads an SSE chat stream.
func readStream(t *testing.T, resp *http.Response) streamed {
	t.Helper()
	defer resp.Body.Close()
	s := streamed{ids: map[string]bool{}}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			s.done = true
			continue
		}
		var c struct {
			ID      string `json:"id"`
			Choices []struct {
				Delta struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
				Total      int `json:"total_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q is not JSON: %v", data, err)
		}
		if c.Error != nil {
			s.errEvent = c.Error.Message
			continue
		}
		s.ids[c.ID] = true
		for _, ch := range c.Choices {
			if ch.Delta.Role != "" {
				s.roles++
			}
			s.text += ch.Delta.Content
			if ch.FinishReason != nil {
				s.finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			s.usage.Prompt, s.usage.Completion, s.usage.Total = c.Usage.Prompt, c.Usage.Completion, c.Usage.Total
		}
	}
	return s
}

// simServer serves a simulator engine with faults over HTTP.
func simServer(t *testing.T, faults sim.Faults) *httptest.Server {
	t.Helper()
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "m", Faults: faults})
	srv := httptest.NewServer(eng.Handler())
	t.Cleanup(func() { srv.Close(); eng.Close() })
	return srv
}

// TestMidStreamContinuation: a stream its replica cuts after some chunks
// is continued on another replica, and the client reads one stream —
// one id, one role chunk, [DONE] — whose text, finish reason and usage
// are those of an uncut stream, wherever the cut fell.
func TestMidStreamContinuation(t *testing.T) {
	whole := simServer(t, sim.Faults{})
	const body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":%d,
		"messages":[{"role":"user","content":"Tell me about gateways %d"}]}`
	for _, cut := range []int{1, 2, 5, 9} {
		for _, maxTokens := range []int{7, 200} {
			t.Run(fmt.Sprintf("cut after %d, max_tokens %d", cut, maxTokens), func(t *testing.T) {
				cutter := simServer(t, sim.Faults{CutAfter: cut})
				gw := startGateway(t, &config.Config{Models: []config.Model{{Name: "m",
					Deployments: []config.Deployment{
						// Weighted so that the first attempt goes to the cutter.
						{Name: "cutter", URL: cutter.URL + "/v1", Dialect: "vllm", Weight: 1000},
						{Name: "whole", URL: whole.URL + "/v1", Dialect: "vllm", Weight: 1},
					}}}})
				req := fmt.Sprintf(body, maxTokens, cut)
				uncut := readStream(t, mustPost(t, whole.URL+"/v1/chat/completions", req))
				got := readStream(t, mustPost(t, gw.URL+"/v1/chat/completions", req))
				if got.errEvent != "" || !got.done {
					t.Fatalf("stream ended with error %q, [DONE] %v", got.errEvent, got.done)
				}
				if got.text != uncut.text || got.finish != uncut.finish {
					t.Errorf("continued stream %q (%s), uncut %q (%s)", got.text, got.finish, uncut.text, uncut.finish)
				}
				if got.usage != uncut.usage {
					t.Errorf("usage %+v, uncut %+v", got.usage, uncut.usage)
				}
				if len(got.ids) != 1 || got.roles != 1 {
					t.Errorf("ids %v, role chunks %d: want one of each", got.ids, got.roles)
				}
			})
		}
	}
}

// TestContinuationImpossible: with no replica that can continue, a cut
// stream ends with an error event naming the real failure, never a clean
// end.
func TestContinuationImpossible(t *testing.T) {
	cutter := simServer(t, sim.Faults{CutAfter: 2})
	off := false
	gw := startGateway(t, &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "cutter", URL: cutter.URL + "/v1", Dialect: "vllm", Continuation: &off}}}}})
	got := readStream(t, mustPost(t, gw.URL+"/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if got.done || got.errEvent == "" {
		t.Fatalf("[DONE] %v, error event %q: want the error event and no [DONE]", got.done, got.errEvent)
	}
	if !strings.Contains(got.errEvent, "ended abnormally") {
		t.Errorf("error event %q does not name the upstream failure", got.errEvent)
	}
}

func mustPost(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	return resp
}

// TestErrorEventMidStream: an engine that sends an error event after some
// chunks (vLLM's engine dying mid-answer) is left for a replica that
// continues the answer; with none, the client gets the engine's own error
// event, and no [DONE].
func TestErrorEventMidStream(t *testing.T) {
	const chunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{%s},"finish_reason":%s}]}` + "\n\n"
	dying := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, fmt.Sprintf(chunk, `"role":"assistant","content":""`, "null")+fmt.Sprintf(chunk, `"content":"Hel"`, "null")+
			fmt.Sprintf(chunk, `"content":"lo"`, "null"))
		w.(http.Flusher).Flush()
		io.WriteString(w, `data: {"error":{"message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,"code":500}}`+"\n\ndata: [DONE]\n\n")
	})
	var asked atomic.Value
	continuer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			return // the gateway's probes (a GET's empty body is not the continuation)
		}
		asked.Store(string(b))
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, fmt.Sprintf(chunk, `"role":"assistant","content":""`, "null")+fmt.Sprintf(chunk, `"content":" world"`, "null")+
			fmt.Sprintf(chunk, "", `"stop"`)+"data: [DONE]\n\n")
	})
	d := httptest.NewServer(dying)
	c := httptest.NewServer(continuer)
	t.Cleanup(func() { d.Close(); c.Close() })
	const req = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

	gw := startGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "dying", URL: d.URL + "/v1", Dialect: "vllm", Weight: 1000},
		{Name: "continuer", URL: c.URL + "/v1", Dialect: "vllm", Weight: 1}}}}})
	got := readStream(t, mustPost(t, gw.URL+"/v1/chat/completions", req))
	if got.text != "Hello world" || got.errEvent != "" || !got.done || got.roles != 1 || len(got.ids) != 1 {
		t.Errorf("continued stream: %+v; want \"Hello world\", no error event, [DONE], one role chunk and id", got)
	}
	if b, _ := asked.Load().(string); !strings.Contains(b, `{"role":"assistant","content":"Hello"}`) || !strings.Contains(b, `"continue_final_message":true`) {
		t.Errorf("the continuation was asked %s", b)
	}

	off := false
	gw = startGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "dying", URL: d.URL + "/v1", Dialect: "vllm", Weight: 1000},
		{Name: "other", URL: c.URL + "/v1", Dialect: "openai", Continuation: &off}}}}})
	got = readStream(t, mustPost(t, gw.URL+"/v1/chat/completions", req))
	if got.text != "Hello" || got.done || !strings.Contains(got.errEvent, "EngineCore") {
		t.Errorf("stream cut by an error event, no replica to continue: %+v; want its text, the engine's event and no [DONE]", got)
	}
}

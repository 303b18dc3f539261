package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
)

const chatHi = `{"messages":[{"role":"user","content":"hi"}]}`

// decode unmarshals a JSON body into a generic value for cmp.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return v
}

func TestErrorDialects(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	overflow := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":40000}`
	overflowMsg := "This model's maximum context length is 32768 tokens. However, you requested 40009 tokens (9 in the messages, 40000 in the completion). Please reduce the length of the messages or completion."
	for _, tc := range []struct {
		name, dialect, body, fail string
		status                    int
		want                      string
	}{
		{"vllm 503", "vllm", chatHi, "503", 503,
			`{"error":{"message":"Service Unavailable (injected by the simulator)","type":"ServiceUnavailableError","param":null,"code":503}}`},
		{"vllm overflow", "vllm", overflow, "", 400,
			`{"error":{"message":"` + overflowMsg + `","type":"BadRequestError","param":null,"code":400}}`},
		{"legacy 500", "vllm-legacy", chatHi, "500", 500,
			`{"object":"error","message":"Internal Server Error (injected by the simulator)","type":"InternalServerError","param":null,"code":500}`},
		{"legacy missing messages", "vllm-legacy", `{"model":"instant"}`, "", 400,
			`{"object":"error","message":"messages: field required and must be a non-empty array","type":"BadRequestError","param":"messages","code":400}`},
		{"ollama 429", "ollama", chatHi, "429", 429, `{"error":"Too Many Requests (injected by the simulator)"}`},
		{"llamacpp overflow", "llamacpp", overflow, "", 400,
			`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9,"n_ctx":32768}}`},
		{"llamacpp 500", "llamacpp", chatHi, "500", 500,
			`{"error":{"code":500,"message":"Internal Server Error (injected by the simulator)","type":"server_error"}}`},
		{"llamacpp malformed", "llamacpp", `{"messages":`, "", 400,
			`{"error":{"code":400,"message":"malformed JSON body: unexpected end of JSON input","type":"invalid_request_error"}}`},
		{"modelstudio bad n", "modelstudio", `{"messages":[{"role":"user","content":"hi"}],"n":0}`, "", 400,
			`{"error":{"message":"n must be between 1 and 128, got 0","type":"invalid_request_error","param":"n","code":"InvalidParameter"},"request_id":"ID"}`},
		{"modelstudio 503", "modelstudio", chatHi, "503", 503,
			`{"error":{"message":"Service Unavailable (injected by the simulator)","type":"service_unavailable_error","param":null,"code":"ServiceUnavailable"},"request_id":"ID"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := []string{HeaderErrorDialect, tc.dialect}
			if tc.fail != "" {
				h = append(h, HeaderFail, tc.fail)
			}
			resp, body := post(t, srv, "/v1/chat/completions", tc.body, h...)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("status %d %q, want %d", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
			}
			got := decode(t, body)
			if m, ok := got.(map[string]any); ok && m["request_id"] != nil {
				if id, _ := m["request_id"].(string); !strings.HasPrefix(id, "chatcmpl-") {
					t.Errorf("request_id %q", id)
				}
				m["request_id"] = "ID"
			}
			if diff := cmp.Diff(decode(t, []byte(tc.want)), got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b")
	p.AudioOut = false // as upstream vLLM, which serves only the thinker
	_, srv := startEngine(t, p, Options{Clock: clock.NewFake(time.Unix(0, 0))})
	for _, tc := range []struct {
		name, path, body string
		status           int
		param            any
	}{
		{"malformed", "/v1/chat/completions", `{`, 400, nil},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"bad role", "/v1/chat/completions", `{"messages":[{"role":"robot","content":"x"}]}`, 400, "messages[0].role"},
		{"bad part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"hologram"}]}]}`, 400, "messages[0].content[0]"},
		{"max_tokens 0", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{"temperature", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"temperature":3}`, 400, "temperature"},
		{"stream_options without stream", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`, 400, "stream_options"},
		{"audio unsupported", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"modalities":["text","audio"],"audio":{"voice":"a","format":"wav"}}`, 400, "modalities"},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, "model"},
		{"no prompt", "/v1/completions", `{"model":"qwen3-omni-7b"}`, 400, "prompt"},
		{"prompt over context", "/v1/completions", `{"prompt":[` + strings.Repeat("1,", 32767) + `1]}`, 400, nil},
		{"no input", "/v1/embeddings", `{"input":[]}`, 400, "input"},
		{"bad header", "/v1/chat/completions", chatHi, 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.name == "bad header" {
				h = []string{HeaderSlow, "soon"}
			}
			resp, body := post(t, srv, tc.path, tc.body, h...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var v struct{ Error struct{ Param any } }
			json.Unmarshal(body, &v)
			if diff := cmp.Diff(tc.param, v.Error.Param); diff != "" {
				t.Errorf("param (-want +got):\n%s\n%s", diff, body)
			}
		})
	}
}

// Media parts cost the profile's fixed token counts.
func TestMediaTokens(t *testing.T) {
	p := mustProfile(t, "instant")
	_, srv := startEngine(t, p, Options{})
	body := `{"max_tokens":1,"messages":[{"role":"user","content":[
		{"type":"text","text":"describe"},
		{"type":"image_url","image_url":{"url":"http://x/a.png"}},
		{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},
		{"type":"audio_url","audio_url":{"url":"http://x/a.wav"}},
		{"type":"video_url","video_url":{"url":"http://x/a.mp4"}},
		{"type":"video","video":["http://x/1.jpg","http://x/2.jpg","http://x/3.jpg"]}]}]}`
	_, b := post(t, srv, "/v1/chat/completions", body)
	var r struct{ Usage usage }
	json.Unmarshal(b, &r)
	want := tokensPerMessage + tokensForAssistant + 2 + p.ImageTokens + 2*p.AudioTokens + p.VideoTokens + 3*p.VideoFrameTokens
	if r.Usage.PromptTokens != want {
		t.Errorf("prompt tokens %d, want %d: %s", r.Usage.PromptTokens, want, b)
	}
}

func TestFailRatesAndParse(t *testing.T) {
	rates, err := ParseFailRates("503=0.5, 500=0.25")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]float64{503: 0.5, 500: 0.25}, rates); diff != "" {
		t.Errorf("rates (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"503", "abc=0.1", "503=x", "200=0.1", "503=0.8,500=0.5", "503=-1"} {
		if _, err := ParseFailRates(bad); err == nil {
			t.Errorf("ParseFailRates(%q) accepted", bad)
		}
	}
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{Faults: Faults{Fail: rates, Seed: 42}})
	counts := map[int]int{}
	for range 80 {
		resp, _ := post(t, srv, "/v1/chat/completions", chatHi)
		counts[resp.StatusCode]++
	}
	if counts[503] == 0 || counts[500] == 0 || counts[200] == 0 || counts[503]+counts[500]+counts[200] != 80 {
		t.Errorf("status counts %v", counts)
	}
	if counts[503] <= counts[500] {
		t.Errorf("503 at rate 0.5 came %d times, 500 at 0.25 %d times", counts[503], counts[500])
	}
}

// A cut stream ends after N events with no [DONE]: the client sees a broken
// connection, not a clean end.
func TestCutAfter(t *testing.T) {
	for _, name := range []string{"instant", "scheduled"} {
		t.Run(name, func(t *testing.T) {
			p := mustProfile(t, "instant")
			if name == "scheduled" {
				p.DecodeBase = 50 * time.Microsecond
			}
			e, srv := startEngine(t, p, Options{})
			req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
			req.Header.Set(HeaderCutAfter, "3")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("read the cut stream without error")
			}
			events := strings.Count(string(body), "data: ")
			if events != 3 || strings.Contains(string(body), "[DONE]") {
				t.Errorf("%d events before the cut: %q", events, body)
			}
			if e.sched != nil {
				waitMetric(t, srv, `vllm:num_requests_running{model_name="instant"} 0`)
			}
		})
	}
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{Faults: Faults{CutAfter: 1}})
	resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatHi))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("non-streaming cut: %v", err)
	}
}

// waitMetric polls /metrics until it shows want (a condition, not a timing).
func waitMetric(t *testing.T, s *httptest.Server, want string) {
	t.Helper()
	for i := 0; ; i++ {
		if strings.Contains(get(t, s, "/metrics"), want) {
			return
		}
		if i > 2000 {
			t.Fatalf("metrics never showed %q:\n%s", want, get(t, s, "/metrics"))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHang(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatHi))
	req.Header.Set(HeaderHang, "1")
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("hung request returned: %v", err)
	case <-time.After(20 * time.Millisecond): // it is still hanging; no deadline on it
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	// Close ends a hang with a 503.
	e2, srv2 := startEngine(t, mustProfile(t, "instant"), Options{Faults: Faults{HangRate: 1}})
	go func() {
		time.Sleep(5 * time.Millisecond)
		e2.Close()
	}()
	if resp, _ := post(t, srv2, "/v1/chat/completions", chatHi); resp.StatusCode != 503 {
		t.Errorf("hang ended by Close: %d", resp.StatusCode)
	}
}

package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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

// Injected 429 and 503 answers carry Retry-After, from the engine's
// setting or the request's header; other statuses never do.
func TestRetryAfter(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{Faults: Faults{RetryAfter: 1500 * time.Millisecond}})
	for _, tc := range []struct {
		name   string
		header []string
		status int
		want   string
	}{
		{"503 engine-wide, rounded up", []string{HeaderFail, "503"}, 503, "2"},
		{"429 from the header", []string{HeaderFail, "429", HeaderRetryAfter, "7"}, 429, "7"},
		{"header 0 turns it off", []string{HeaderFail, "503", HeaderRetryAfter, "0"}, 503, ""},
		{"500 has none", []string{HeaderFail, "500", HeaderRetryAfter, "7"}, 500, ""},
		{"html 503", []string{HeaderFailHTML, "503", HeaderRetryAfter, "3"}, 503, "3"},
		{"ollama 503", []string{HeaderFail, "503", HeaderErrorDialect, DialectOllama}, 503, "2"},
		{"success has none", nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, "/v1/chat/completions", chatHi, tc.header...)
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.want {
				t.Errorf("%d Retry-After %q, want %d %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), tc.status, tc.want, body)
			}
		})
	}
}

// A proxy's HTML error page: nginx's, with text/html, from the header (any
// status) or the engine-wide rate (502), on chat and embeddings alike.
func TestFailHTML(t *testing.T) {
	page := func(title string) string {
		return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
			"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	}
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	_, always := startEngine(t, mustProfile(t, "instant"), Options{Faults: Faults{FailHTMLRate: 1}})
	for _, tc := range []struct {
		name, path string
		srv        *httptest.Server
		header     []string
		status     int
		title      string
	}{
		{"header 504", "/v1/chat/completions", srv, []string{HeaderFailHTML, "504"}, 504, "504 Gateway Timeout"},
		{"rate", "/v1/chat/completions", always, nil, 502, "502 Bad Gateway"},
		{"embeddings", "/v1/embeddings", always, nil, 502, "502 Bad Gateway"},
		{"fail header wins over the rate", "/v1/chat/completions", always, []string{HeaderFail, "500"}, 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := chatHi
			if tc.path == "/v1/embeddings" {
				body = `{"input":"hi"}`
			}
			resp, b := post(t, tc.srv, tc.path, body, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.title == "" {
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("an engine error as %q", resp.Header.Get("Content-Type"))
				}
				return
			}
			if diff := cmp.Diff(page(tc.title), string(b)); diff != "" || resp.Header.Get("Content-Type") != "text/html" {
				t.Errorf("content type %q, body (-want +got):\n%s", resp.Header.Get("Content-Type"), diff)
			}
		})
	}
}

// A stalled answer sends 200 and its headers at once, then nothing until
// the client leaves; an engine shutting down drops the connection.
func TestStall(t *testing.T) {
	for _, tc := range []struct {
		name, body, contentType string
		faults                  Faults
		header                  []string
		close                   bool // end the stall by closing the engine, not by leaving
	}{
		{"stream", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`, "text/event-stream", Faults{}, []string{HeaderStall, "1"}, false},
		{"whole", chatHi, "application/json", Faults{}, []string{HeaderStall, "true"}, false},
		{"rate", chatHi, "application/json", Faults{StallRate: 1}, nil, false},
		{"stall beats a drawn hang", chatHi, "application/json", Faults{HangRate: 1}, []string{HeaderStall, "1"}, false},
		{"engine closes", chatHi, "application/json", Faults{StallRate: 1}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, srv := startEngine(t, mustProfile(t, "instant"), Options{Faults: tc.faults})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(tc.body))
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, resp.Header.Get("Content-Type"), tc.contentType)
			}
			read := make(chan error, 1)
			go func() {
				b, err := io.ReadAll(resp.Body)
				if err == nil && len(b) > 0 {
					err = errors.New("stalled answer sent " + string(b))
				}
				read <- err
			}()
			select {
			case err := <-read:
				t.Fatalf("the stalled body ended: %v", err)
			case <-time.After(20 * time.Millisecond): // still stalled; nothing else ends it
			}
			if tc.close {
				e.Close()
			} else {
				cancel()
			}
			if err := <-read; err == nil {
				t.Error("the stalled body ended cleanly")
			}
		})
	}
}

// A cut stream ends the connection abruptly: no [DONE] and no chunked
// terminator, as a dying engine leaves it; a cut whole answer promises
// more bytes than it sends.
func TestCutIsAbrupt(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, tc := range []struct {
		name, body string
		stream     bool
	}{
		{"stream", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`, true},
		{"whole", chatHi, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n%s: 3\r\nContent-Length: %d\r\n\r\n%s",
				HeaderCutAfter, len(tc.body), tc.body)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			raw, err := io.ReadAll(conn) // the server closes the connection
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("%v: %q", err, raw)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("reading the cut body: %v, want an unexpected EOF", err)
			}
			switch {
			case tc.stream && (resp.TransferEncoding == nil || bytes.HasSuffix(raw, []byte("0\r\n\r\n")) || bytes.Contains(body, []byte("[DONE]"))):
				t.Errorf("a clean end of the stream: %q", raw)
			case tc.stream && strings.Count(string(body), "data: ") != 3:
				t.Errorf("%d events before the cut, want 3: %q", strings.Count(string(body), "data: "), body)
			case !tc.stream && int64(len(body)) >= resp.ContentLength:
				t.Errorf("%d of %d bytes: not cut", len(body), resp.ContentLength)
			}
		})
	}
}

func TestFaultsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults Faults
		msg    string // in the error; "" for none
	}{
		{"zero", Faults{}, ""},
		{"all at once", Faults{Fail: map[int]float64{503: 0.2}, FailHTMLRate: 0.3, OOMRate: 0.5, HangRate: 0.5, StallRate: 0.5, RetryAfter: time.Second}, ""},
		{"fail-html rate", Faults{FailHTMLRate: 1.5}, "fail-html rate"},
		{"oom rate", Faults{OOMRate: -0.1}, "oom rate"},
		{"stall rate", Faults{StallRate: 2}, "stall rate"},
		{"failures add up", Faults{Fail: map[int]float64{503: 0.5}, FailHTMLRate: 0.3, OOMRate: 0.3}, "fail, fail-html and oom rates add up to 1.1"},
		{"hang and stall add up", Faults{HangRate: 0.6, StallRate: 0.6}, "hang and stall rates add up to 1.2"},
		{"negative retry-after", Faults{RetryAfter: -time.Second}, "retry-after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.faults.Validate()
			if (err == nil) != (tc.msg == "") || err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Validate() = %v, want %q", err, tc.msg)
			}
		})
	}
}

// The engine-wide rates: each failure and each of hanging and stalling
// comes about as often as its rate says, never two failures at once.
func TestFaultDraws(t *testing.T) {
	d := newFaultDice(Faults{Fail: map[int]float64{503: 0.2}, FailHTMLRate: 0.2, OOMRate: 0.2, HangRate: 0.25, StallRate: 0.25, Seed: 42})
	counts := map[string]int{}
	const n = 4000
	for range n {
		p, err := d.plan(http.Header{})
		if err != nil {
			t.Fatal(err)
		}
		failures := 0
		for name, on := range map[string]bool{"fail": p.fail == 503, "html": p.failHTML == 502, "oom": p.oom, "hang": p.hang, "stall": p.stall} {
			if on {
				counts[name]++
			}
		}
		for _, on := range []bool{p.fail != 0, p.failHTML != 0, p.oom} {
			if on {
				failures++
			}
		}
		if failures > 1 || p.hang && p.stall {
			t.Fatalf("plan %+v has two faults that exclude each other", p)
		}
	}
	for name, rate := range map[string]float64{"fail": 0.2, "html": 0.2, "oom": 0.2, "hang": 0.25, "stall": 0.25} {
		if got := float64(counts[name]) / n; got < rate-0.04 || got > rate+0.04 {
			t.Errorf("%s came %d times in %d, want about %g", name, counts[name], n, rate)
		}
	}
}

// Headers override the drawn faults and exclude each other.
func TestFaultHeaders(t *testing.T) {
	d := newFaultDice(Faults{OOMRate: 1, HangRate: 1, Seed: 1})
	for _, tc := range []struct {
		name   string
		header []string
		want   faultPlan
		bad    bool
	}{
		{"drawn", nil, faultPlan{oom: true, hang: true}, false},
		{"fail replaces oom", []string{HeaderFail, "503"}, faultPlan{fail: 503, hang: true}, false},
		{"html replaces oom", []string{HeaderFailHTML, "502"}, faultPlan{failHTML: 502, hang: true}, false},
		{"oom off, stall replaces hang", []string{HeaderOOM, "0", HeaderStall, "1"}, faultPlan{stall: true}, false},
		{"retry-after", []string{HeaderRetryAfter, "30", HeaderHang, "false"}, faultPlan{oom: true, retryAfter: 30 * time.Second}, false},
		{"bad html status", []string{HeaderFailHTML, "200"}, faultPlan{}, true},
		{"bad oom", []string{HeaderOOM, "yes please"}, faultPlan{}, true},
		{"bad stall", []string{HeaderStall, "maybe"}, faultPlan{}, true},
		{"bad retry-after", []string{HeaderRetryAfter, "soon"}, faultPlan{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for i := 0; i+1 < len(tc.header); i += 2 {
				h.Set(tc.header[i], tc.header[i+1])
			}
			got, err := d.plan(h)
			if tc.bad {
				if err == nil {
					t.Errorf("accepted %v", tc.header)
				}
				return
			}
			tc.want.dialect = DialectVLLM
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(faultPlan{})); err != nil || diff != "" {
				t.Errorf("err %v, plan (-want +got):\n%s", err, diff)
			}
		})
	}
}

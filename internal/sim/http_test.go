package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/clock"
)

// startEngine serves an engine on a loopback httptest server.
func startEngine(t testing.TB, p Profile, opts Options) (*Engine, *httptest.Server) {
	t.Helper()
	e := New(p, opts)
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(e.Close) // runs first: in-flight handlers return
	return e, srv
}

func sdkClient(srv *httptest.Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
}

func post(t testing.TB, srv *httptest.Server, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return resp, b
}

// bodyOf posts a chat request and returns the body of its 200 answer.
func bodyOf(t *testing.T, srv *httptest.Server, body string) []byte {
	t.Helper()
	resp, b := post(t, srv, "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	return b
}

// drive advances the fake clock to each deadline the engine waits for,
// until done closes: the engine then runs in virtual time.
func drive(clk *clock.Fake, done <-chan struct{}) {
	for {
		changed := clk.Changed()
		if clk.AdvanceToNext() {
			continue
		}
		select {
		case <-done:
			return
		case <-changed:
		}
	}
}

func chatParams(model, prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
}

func TestChatSDK(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	ctx := context.Background()
	params := chatParams("instant", "Tell me about the sea.")
	params.Seed = openai.Int(7)
	a, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "chatcmpl-") || a.Object != "chat.completion" || a.Model != "instant" || len(a.Choices) != 1 {
		t.Fatalf("response %+v", a)
	}
	c := a.Choices[0]
	if c.Message.Role != "assistant" || c.Message.Content == "" || c.FinishReason != "stop" {
		t.Errorf("choice %+v", c)
	}
	want := openai.CompletionUsage{PromptTokens: int64(tokensPerMessage + tokensForAssistant + countTokens("Tell me about the sea.")),
		CompletionTokens: int64(countTokens(c.Message.Content))}
	want.TotalTokens = want.PromptTokens + want.CompletionTokens
	if diff := cmp.Diff([3]int64{want.PromptTokens, want.CompletionTokens, want.TotalTokens}, [3]int64{a.Usage.PromptTokens, a.Usage.CompletionTokens, a.Usage.TotalTokens}); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}

	b, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if b.Choices[0].Message.Content != c.Message.Content || b.ID == a.ID {
		t.Errorf("same request: %q then %q (ids %s, %s)", c.Message.Content, b.Choices[0].Message.Content, a.ID, b.ID)
	}
	params.Seed = openai.Int(8)
	d, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if d.Choices[0].Message.Content == c.Message.Content {
		t.Errorf("another seed gave the same answer %q", c.Message.Content)
	}

	params.N = openai.Int(3)
	params.MaxCompletionTokens = openai.Int(4)
	m, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Choices) != 3 || m.Usage.CompletionTokens != 12 {
		t.Fatalf("n=3 max 4: %d choices, %d completion tokens", len(m.Choices), m.Usage.CompletionTokens)
	}
	for i, ch := range m.Choices {
		if ch.Index != int64(i) || ch.FinishReason != "length" || countTokens(ch.Message.Content) != 4 {
			t.Errorf("choice %d: index %d finish %s content %q", i, ch.Index, ch.FinishReason, ch.Message.Content)
		}
	}
	if m.Choices[0].Message.Content == m.Choices[1].Message.Content {
		t.Error("choices of one request are identical")
	}
}

func TestChatStreamSDK(t *testing.T) {
	for _, name := range []string{"instant", "fast"} {
		t.Run(name, func(t *testing.T) {
			p := mustProfile(t, "instant")
			if name == "fast" { // goes through the scheduler on the real clock
				p.DecodeBase = 100 * time.Microsecond
			}
			_, srv := startEngine(t, p, Options{})
			client := sdkClient(srv)
			ctx := context.Background()
			params := chatParams("", "Stream me a story about a river.")
			whole, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var (
				acc          openai.ChatCompletionAccumulator
				contentDelta int
				sawRole      bool
				finish       string
				usageChunks  int
			)
			for stream.Next() {
				ch := stream.Current()
				acc.AddChunk(ch)
				if ch.Object != "chat.completion.chunk" {
					t.Errorf("object %q", ch.Object)
				}
				if len(ch.Choices) == 0 {
					usageChunks++
					continue
				}
				d := ch.Choices[0].Delta
				switch {
				case d.Role == "assistant":
					sawRole = true
				case d.Content != "":
					contentDelta++
				case ch.Choices[0].FinishReason != "":
					finish = ch.Choices[0].FinishReason
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			got := acc.Choices[0].Message.Content
			if got != whole.Choices[0].Message.Content {
				t.Errorf("streamed %q, whole %q", got, whole.Choices[0].Message.Content)
			}
			if !sawRole || finish != "stop" || usageChunks != 1 {
				t.Errorf("role %v finish %q usage chunks %d", sawRole, finish, usageChunks)
			}
			if acc.Usage.CompletionTokens != int64(contentDelta) || acc.Usage.PromptTokens != whole.Usage.PromptTokens {
				t.Errorf("usage %+v with %d content deltas", acc.Usage, contentDelta)
			}
		})
	}
}

// parseWAV checks a RIFF/WAVE header and returns the sample count.
func parseWAV(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[12:16]) != "fmt " || string(b[36:40]) != "data" {
		t.Fatalf("not a WAV header: %q", b[:min(len(b), 44)])
	}
	le := binary.LittleEndian
	if le.Uint16(b[20:]) != 1 || le.Uint16(b[22:]) != 1 || le.Uint32(b[24:]) != 24000 || le.Uint32(b[28:]) != 48000 || le.Uint16(b[32:]) != 2 || le.Uint16(b[34:]) != 16 {
		t.Errorf("format: pcm %d channels %d rate %d byte rate %d align %d bits %d, want 24 kHz mono 16-bit PCM",
			le.Uint16(b[20:]), le.Uint16(b[22:]), le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint16(b[32:]), le.Uint16(b[34:]))
	}
	data := int(le.Uint32(b[40:]))
	if int(le.Uint32(b[4:])) != 36+data || len(b) != 44+data {
		t.Errorf("sizes: riff %d data %d file %d", le.Uint32(b[4:]), data, len(b))
	}
	return data / 2
}

func TestAudioOutput(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	ctx := context.Background()
	params := chatParams("instant", "Say hello.")
	params.Modalities = []string{"text", "audio"}
	params.Audio = openai.ChatCompletionAudioParam{Format: openai.ChatCompletionAudioParamFormatWAV, Voice: openai.ChatCompletionAudioParamVoiceUnion{OfString: openai.String("alloy")}}

	r, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	au := r.Choices[0].Message.Audio
	wav, err := base64.StdEncoding.DecodeString(au.Data)
	if err != nil {
		t.Fatal(err)
	}
	if n := parseWAV(t, wav); n != int(r.Usage.CompletionTokens)*audioSamplesPerToken {
		t.Errorf("%d samples for %d tokens", n, r.Usage.CompletionTokens)
	}
	if !strings.HasPrefix(au.ID, "audio_") || au.Transcript == "" || au.ExpiresAt <= r.Created {
		t.Errorf("audio %q expires %d transcript %q", au.ID, au.ExpiresAt, au.Transcript)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var data []byte
	var transcript strings.Builder
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) == 0 {
			continue
		}
		raw := ch.Choices[0].Delta.JSON.ExtraFields["audio"].Raw()
		if raw == "" {
			raw = ch.Choices[0].Delta.Audio.RawJSON()
		}
		if raw == "" {
			continue
		}
		var a struct{ ID, Data, Transcript string }
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			t.Fatal(err)
		}
		if a.ID != "" && !strings.HasPrefix(a.ID, "audio_") {
			t.Errorf("audio id %q", a.ID)
		}
		piece, err := base64.StdEncoding.DecodeString(a.Data)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, piece...)
		transcript.WriteString(a.Transcript)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if transcript.String() != au.Transcript {
		t.Errorf("streamed transcript %q, whole %q", transcript.String(), au.Transcript)
	}
	if !bytes.Equal(data, wav) {
		t.Errorf("streamed audio (%d bytes) differs from whole (%d bytes)", len(data), len(wav))
	}

	// A profile without audio output refuses.
	text := mustProfile(t, "qwen3-omni-7b")
	text.AudioOut = false // upstream vLLM: the thinker only
	_, srv7 := startEngine(t, text, Options{ModelName: params.Model})
	c7 := sdkClient(srv7)
	_, err = c7.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Errorf("audio on a text-only profile: %v", err)
	}
}

func TestCompletions(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	resp, body := post(t, srv, "/v1/completions", `{"model":"instant","prompt":["Once upon","a time"],"n":2,"max_tokens":5}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r struct {
		ID, Object string
		Choices    []struct {
			Index        int
			Text         string
			FinishReason string `json:"finish_reason"`
		}
		Usage usage
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.ID, "cmpl-") || r.Object != "text_completion" || len(r.Choices) != 4 {
		t.Fatalf("%s", body)
	}
	for i, c := range r.Choices {
		if c.Index != i || c.FinishReason != "length" || countTokens(c.Text) != 5 {
			t.Errorf("choice %d: %+v", i, c)
		}
	}
	if diff := cmp.Diff(usage{PromptTokens: 4, CompletionTokens: 20, TotalTokens: 24}, r.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}

	// Streaming: text chunks, a final chunk, usage, [DONE]; the same text.
	resp, body = post(t, srv, "/v1/completions", `{"prompt":"Once upon","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`)
	events := sseEvents(t, body)
	if resp.Header.Get("Content-Type") != "text/event-stream" || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream: %s", body)
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var ch struct {
			Object  string
			Choices []struct{ Text string }
			Usage   *usage
		}
		if err := json.Unmarshal([]byte(ev), &ch); err != nil {
			t.Fatal(err)
		}
		if ch.Object != "text_completion" {
			t.Errorf("chunk object %q", ch.Object)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Text)
		}
	}
	if text.String() != r.Choices[0].Text {
		t.Errorf("streamed %q, whole %q", text.String(), r.Choices[0].Text)
	}
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		} else if sc.Text() != "" {
			t.Errorf("unexpected SSE line %q", sc.Text())
		}
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	ctx := context.Background()
	r, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "instant", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a cat", "a dog", "a cat"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Data) != 3 {
		t.Fatalf("%d embeddings", len(r.Data))
	}
	for i, d := range r.Data {
		norm := 0.0
		for _, v := range d.Embedding {
			norm += v * v
		}
		if len(d.Embedding) != 256 || math.Abs(norm-1) > 1e-5 || d.Index != int64(i) {
			t.Errorf("embedding %d: dims %d norm %g", i, len(d.Embedding), norm)
		}
	}
	if !cmp.Equal(r.Data[0].Embedding, r.Data[2].Embedding) || cmp.Equal(r.Data[0].Embedding, r.Data[1].Embedding) {
		t.Error("embeddings are not a function of the input")
	}
	if r.Usage.PromptTokens != 6 {
		t.Errorf("usage %+v", r.Usage)
	}
	// base64 decodes to the same floats.
	_, body := post(t, srv, "/v1/embeddings", `{"input":"a cat","encoding_format":"base64","dimensions":8}`)
	var b64 struct{ Data []struct{ Embedding string } }
	if err := json.Unmarshal(body, &b64); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(b64.Data[0].Embedding)
	if len(raw) != 32 {
		t.Fatalf("base64 embedding of %d bytes: %s", len(raw), body)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(raw)); got != embedding(hashOf("a cat"), 8)[0] {
		t.Errorf("first float %g", got)
	}
}

func hashOf(s string) uint64 {
	h := newSeedHash()
	h.str(s)
	return h.h
}

func TestModelsHealthMetrics(t *testing.T) {
	e, srv := startEngine(t, mustProfile(t, "instant"), Options{ModelName: "small"})
	client := sdkClient(srv)
	page, err := client.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "small" || page.Data[0].Object != "model" {
		t.Errorf("models %+v", page.Data)
	}
	if resp, _ := post(t, srv, "/v1/chat/completions", `{"model":"small","messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 200 {
		t.Errorf("model by option name: %d", resp.StatusCode)
	}
	if resp, _ := post(t, srv, "/v1/chat/completions", `{"model":"instant","messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 200 {
		t.Errorf("model by profile name: %d", resp.StatusCode)
	}
	metrics := get(t, srv, "/metrics")
	for _, want := range []string{
		`vllm:num_requests_running{model_name="small"} 0`,
		`vllm:num_requests_waiting{model_name="small"} 0`,
		`vllm:kv_cache_usage_perc{model_name="small"} 0`,
		`vllm:num_preemptions_total{model_name="small"} 0`,
		`vllm:prompt_tokens_total{model_name="small"} 18`,
		`vllm:generation_tokens_total{model_name="small"}`,
		`vllm:time_to_first_token_seconds_count{model_name="small"} 2`,
		`vllm:e2e_request_latency_seconds_count{model_name="small"} 2`,
		`vllm:request_success_total{finished_reason="stop",model_name="small"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code := getStatus(t, srv, "/api/version"); code != 200 {
		t.Errorf("/api/version = %d while serving", code)
	}
	if code := getStatus(t, srv, "/health"); code != 200 {
		t.Errorf("health %d", code)
	}
	e.Close()
	if code := getStatus(t, srv, "/health"); code != 503 {
		t.Errorf("health after Close %d", code)
	}
}

func get(t testing.TB, srv *httptest.Server, path string) string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func getStatus(t testing.TB, srv *httptest.Server, path string) int {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

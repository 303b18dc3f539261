package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/answer"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// countedSim is the instant simulator (audio out, model "m") behind a
// counter of the requests it got; delay holds each answer back.
func countedSim(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "m"})
	var n atomic.Int64
	h := eng.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(delay)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); eng.Close() })
	return srv, &n
}

// cachedGateway serves model "m" on upstream with the given cache policy.
func cachedGateway(t *testing.T, upstream string, c config.Cache, stores config.CacheStores) (*Gateway, *httptest.Server) {
	t.Helper()
	cfg := &config.Config{Cache: stores, Models: []config.Model{{Name: "m", Cache: c,
		Capabilities: config.Capabilities{Output: []string{"text", "audio"}},
		Deployments:  []config.Deployment{{Name: "up", URL: upstream + "/v1", AudioOutput: true}}}}}
	return newTestGateway(t, cfg)
}

// ask posts body to the gateway and returns the answer's cache header and body.
func ask(t *testing.T, srv *httptest.Server, body string, hdr ...string) (string, string) {
	t.Helper()
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", body, hdr...)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return resp.Header.Get("X-Omnigate-Cache"), string(b)
}

const cachedReq = `{"model":"m","temperature":0,"max_tokens":20,"messages":[{"role":"user","content":"what is a gateway?"}]}`

// TestCacheExact: the same request twice is answered once upstream, the
// second time from memory, byte for byte; what differs in the answer's
// inputs, or is sampled, or is refused by Cache-Control, goes upstream.
func TestCacheExact(t *testing.T) {
	up, calls := countedSim(t, 0)
	_, srv := cachedGateway(t, up.URL, config.Cache{Mode: "exact"}, config.CacheStores{})
	h1, b1 := ask(t, srv, cachedReq)
	h2, b2 := ask(t, srv, strings.Replace(cachedReq, `"temperature":0,`, `"temperature":0.0,"user":"someone",`, 1))
	if h1 != "miss" || h2 != "hit" || calls.Load() != 1 {
		t.Fatalf("cache %q then %q, %d upstream calls; want miss, hit, 1", h1, h2, calls.Load())
	}
	if b1 != b2 {
		t.Errorf("the hit differs from the answer kept:\n%s\n%s", b1, b2)
	}

	tests := []struct {
		name, body string
		hdr        []string
		want       string
	}{
		{"a changed number", strings.Replace(cachedReq, "what is", "what is 2+2 in", 1), nil, "miss"},
		{"a system prompt", strings.Replace(cachedReq, `"messages":[`, `"messages":[{"role":"system","content":"be brief"},`, 1), nil, "miss"},
		{"another max_tokens", strings.Replace(cachedReq, `"max_tokens":20`, `"max_tokens":21`, 1), nil, "miss"},
		{"sampled", strings.Replace(cachedReq, `"temperature":0`, `"temperature":0.7`, 1), nil, "uncacheable"},
		{"no temperature: the default samples", strings.Replace(cachedReq, `"temperature":0,`, ``, 1), nil, "uncacheable"},
		{"a sampled prompt that says seed", `{"model":"m","temperature":0.5,"messages":[{"role":"user","content":"seed"}]}`, nil, "uncacheable"},
		{"no-cache", cachedReq, []string{"Cache-Control", "no-cache"}, "miss"},
		{"no-cache, no-store", cachedReq, []string{"Cache-Control", "no-cache, no-store"}, "bypass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			if h, _ := ask(t, srv, tt.body, tt.hdr...); h != tt.want {
				t.Errorf("X-Omnigate-Cache %q, want %q", h, tt.want)
			}
			if calls.Load() != before+1 {
				t.Errorf("%d upstream calls, want 1", calls.Load()-before)
			}
		})
	}
	t.Run("a seed makes a sampled answer cacheable", func(t *testing.T) {
		seeded := strings.Replace(cachedReq, `"temperature":0`, `"temperature":0.7,"seed":7`, 1)
		ask(t, srv, seeded)
		if h, _ := ask(t, srv, seeded); h != "hit" {
			t.Errorf("second seeded request: %q", h)
		}
	})
	t.Run("no-store keeps nothing", func(t *testing.T) {
		body := strings.Replace(cachedReq, "gateway", "proxy", 1)
		ask(t, srv, body, "Cache-Control", "no-store")
		if h, _ := ask(t, srv, body); h != "miss" {
			t.Errorf("after no-store: %q, want miss", h)
		}
	})
}

// TestCacheReplaysStreams: an answer kept from a whole answer replays as a
// stream, and one kept from a stream answers a whole request, audio
// included, read through the official OpenAI SDK: the text, finish reason,
// usage and audio are those of the live answer.
func TestCacheReplaysStreams(t *testing.T) {
	up, calls := countedSim(t, 0)
	_, srv := cachedGateway(t, up.URL, config.Cache{Mode: "exact"}, config.CacheStores{})
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := func(prompt string, audio bool) openai.ChatCompletionNewParams {
		p := openai.ChatCompletionNewParams{Model: "m", Temperature: openai.Float(0), MaxTokens: openai.Int(24),
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
		if audio {
			p.Modalities = []string{"text", "audio"}
			p.Audio = openai.ChatCompletionAudioParam{Voice: openai.ChatCompletionAudioParamVoiceUnion{OfString: openai.String("Cherry")}, Format: "pcm16"}
		}
		return p
	}
	whole := func(p openai.ChatCompletionNewParams) *openai.ChatCompletion {
		t.Helper()
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
		r, err := c.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	streamed := func(p openai.ChatCompletionNewParams) *openai.ChatCompletion {
		t.Helper()
		s := c.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		var pcm []byte
		var transcript string
		for s.Next() {
			ch := s.Current()
			acc.AddChunk(ch)
			// The SDK's accumulator leaves audio out: join it here.
			if len(ch.Choices) > 0 {
				raw := ch.Choices[0].Delta.JSON.ExtraFields["audio"].Raw()
				if raw == "" {
					raw = ch.Choices[0].Delta.Audio.RawJSON()
				}
				if raw != "" {
					var au struct{ Data, Transcript string }
					if err := json.Unmarshal([]byte(raw), &au); err != nil {
						t.Fatal(err)
					}
					b, err := base64.StdEncoding.DecodeString(au.Data)
					if err != nil {
						t.Fatal(err)
					}
					pcm, transcript = append(pcm, b...), transcript+au.Transcript
				}
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		r := acc.ChatCompletion
		if len(r.Choices) > 0 && pcm != nil {
			r.Choices[0].Message.Audio.Data = base64.StdEncoding.EncodeToString(pcm)
			r.Choices[0].Message.Audio.Transcript = transcript
		}
		return &r
	}
	same := func(t *testing.T, live, cached *openai.ChatCompletion) {
		t.Helper()
		if len(live.Choices) != 1 || len(cached.Choices) != 1 {
			t.Fatalf("choices %d and %d", len(live.Choices), len(cached.Choices))
		}
		lc, cc := live.Choices[0], cached.Choices[0]
		if lc.Message.Content != cc.Message.Content || lc.FinishReason != cc.FinishReason || lc.FinishReason == "" {
			t.Errorf("content %q/%q, finish %q/%q", lc.Message.Content, cc.Message.Content, lc.FinishReason, cc.FinishReason)
		}
		if live.Usage.TotalTokens == 0 || live.Usage.PromptTokens != cached.Usage.PromptTokens || live.Usage.CompletionTokens != cached.Usage.CompletionTokens {
			t.Errorf("usage %+v / %+v", live.Usage, cached.Usage)
		}
		if lc.Message.Audio.Transcript != cc.Message.Audio.Transcript || lc.Message.Audio.Data != cc.Message.Audio.Data {
			t.Errorf("audio: transcript %q/%q, data %d/%d bytes", lc.Message.Audio.Transcript, cc.Message.Audio.Transcript,
				len(lc.Message.Audio.Data), len(cc.Message.Audio.Data))
		}
	}
	type ask func(openai.ChatCompletionNewParams) *openai.ChatCompletion
	for _, audio := range []bool{false, true} {
		name := "text"
		if audio {
			name = "audio"
		}
		for _, order := range []struct {
			name          string
			first, second ask
		}{{"whole, then a stream", whole, streamed}, {"a stream, then whole", streamed, whole}} {
			t.Run(name+": "+order.name, func(t *testing.T) {
				p := params(name+" "+order.name, audio)
				before := calls.Load()
				live := order.first(p)
				cached := order.second(p)
				if calls.Load() != before+1 {
					t.Errorf("%d upstream calls, want 1", calls.Load()-before)
				}
				same(t, live, cached)
			})
		}
	}
}

// TestCacheCoalesces: identical requests at the same moment cost one
// upstream request; streams that join late get the chunks so far, then the
// rest; every client reads the same answer.
func TestCacheCoalesces(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "whole"
		if stream {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) {
			up, calls := countedSim(t, 300*time.Millisecond)
			_, srv := cachedGateway(t, up.URL, config.Cache{Mode: "exact"}, config.CacheStores{})
			body := cachedReq
			if stream {
				body = strings.Replace(body, `{"model":"m",`, `{"model":"m","stream":true,`, 1)
			}
			const n = 16
			var wg sync.WaitGroup
			bodies, headers := make([]string, n), make([]string, n)
			for i := range n {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					time.Sleep(time.Duration(i) * 10 * time.Millisecond) // some join while the leader waits
					headers[i], bodies[i] = ask(t, srv, body)
				}(i)
			}
			wg.Wait()
			if calls.Load() != 1 {
				t.Errorf("%d upstream calls for %d identical requests, want 1", calls.Load(), n)
			}
			counts := map[string]int{}
			for i := range n {
				counts[headers[i]]++
				if bodies[i] != bodies[0] {
					t.Errorf("client %d read another answer:\n%s\n%s", i, bodies[i], bodies[0])
				}
			}
			if counts["miss"] != 1 || counts["coalesced"]+counts["hit"] != n-1 {
				t.Errorf("cache headers %v, want one miss and the rest coalesced or hits", counts)
			}
			if stream && !strings.HasSuffix(bodies[0], "data: [DONE]\n\n") {
				t.Errorf("the stream does not end with [DONE]: %q", bodies[0])
			}
		})
	}
}

// TestCacheMetrics: the cache's results are counted per model, and the
// store's size is on /metrics.
func TestCacheMetrics(t *testing.T) {
	up, _ := countedSim(t, 0)
	_, srv := cachedGateway(t, up.URL, config.Cache{Mode: "exact"}, config.CacheStores{})
	_, first := ask(t, srv, cachedReq)
	ask(t, srv, cachedReq)
	_, sampled := ask(t, srv, strings.Replace(cachedReq, `"temperature":0`, `"temperature":1`, 1))
	_, b := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`omnigate_cache_requests_total{model="m",result="hit"} 1`,
		`omnigate_cache_requests_total{model="m",result="miss"} 1`,
		`omnigate_cache_requests_total{model="m",result="uncacheable"} 1`,
		`omnigate_cache_entries 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// A hit cost the engine nothing: only the tokens of the two answers
	// that went upstream are counted.
	completion := func(body string) int {
		var a struct {
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || a.Usage.CompletionTokens == 0 {
			t.Fatalf("usage of %s: %v", body, err)
		}
		return a.Usage.CompletionTokens
	}
	want := fmt.Sprintf(`omnigate_tokens_total{deployment="up",kind="completion",model="m"} %d`, completion(first)+completion(sampled))
	if !strings.Contains(string(b), want+"\n") {
		t.Errorf("/metrics lacks %s (the hit's tokens counted too?)", want)
	}
}

// TestCachePurge: POST /admin/cache/purge drops a model's answers (the
// next request goes upstream); a name that is not a model's is a 400.
func TestCachePurge(t *testing.T) {
	up, calls := countedSim(t, 0)
	gw, srv := cachedGateway(t, up.URL, config.Cache{Mode: "exact"}, config.CacheStores{})
	admin := httptest.NewServer(gw.Admin())
	t.Cleanup(admin.Close)
	ask(t, srv, cachedReq)
	if h, _ := ask(t, srv, cachedReq); h != "hit" {
		t.Fatalf("before the purge: %q", h)
	}
	resp, b := post(t, admin.URL+"/admin/cache/purge?model=m", "application/json", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"purged":1`) {
		t.Fatalf("purge: %d %s", resp.StatusCode, b)
	}
	before := calls.Load()
	if h, _ := ask(t, srv, cachedReq); h != "miss" || calls.Load() != before+1 {
		t.Errorf("after the purge: %q, %d upstream calls", h, calls.Load()-before)
	}
	if resp, b := post(t, admin.URL+"/admin/cache/purge?model=nope", "application/json", ""); resp.StatusCode != 400 || !strings.Contains(string(b), `"param":"model"`) {
		t.Errorf("purge of an unknown model: %d %s", resp.StatusCode, b)
	}
	if resp, _ := get(t, admin.URL+"/admin/cache/purge"); resp.StatusCode != 405 {
		t.Errorf("GET purge: %d", resp.StatusCode)
	}
}

// TestCacheTraced: a traced request to a model with a cache has a cache
// lookup span saying what the cache did; a hit has no attempt span.
func TestCacheTraced(t *testing.T) {
	up, _ := countedSim(t, 0)
	srv, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m", Cache: config.Cache{Mode: "exact"},
		Deployments: []config.Deployment{{Name: "up", URL: up.URL + "/v1"}}}}})
	postTraced(t, srv, cachedReq, nil)
	postTraced(t, srv, cachedReq, nil)
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Ended()) < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var got []string
	for _, s := range rec.Ended() {
		name := s.Name()
		for _, kv := range s.Attributes() {
			if kv.Key == "omnigate.cache" {
				name += " " + kv.Value.Emit()
			}
		}
		got = append(got, name)
	}
	want := []string{"cache lookup miss", "attempt up", "chat m miss", "cache lookup hit", "chat m hit"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("spans in the order they ended (-want +got):\n%s", d)
	}
}

// TestCacheContinuedStream: a stream cut by its replica and continued on
// another is kept whole, as the client read it: the next request is a hit
// with the same text.
func TestCacheContinuedStream(t *testing.T) {
	cutter := simServer(t, sim.Faults{CutAfter: 3})
	whole := simServer(t, sim.Faults{})
	_, srv := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "m", Cache: config.Cache{Mode: "exact"},
		Deployments: []config.Deployment{
			{Name: "cutter", URL: cutter.URL + "/v1", Dialect: "vllm", Weight: 1000},
			{Name: "whole", URL: whole.URL + "/v1", Dialect: "vllm", Weight: 1}}}}})
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"temperature":0,"max_tokens":40,"messages":[{"role":"user","content":"Tell me about gateways"}]}`
	text := func(stream string) string {
		doc, info, err := answer.Assemble(strings.NewReader(stream), "")
		if err != nil || !info.Complete {
			t.Fatalf("assemble: %+v %v\n%s", info, err, stream)
		}
		var a struct {
			Choices []struct{ Message struct{ Content string } }
		}
		json.Unmarshal(doc, &a)
		return a.Choices[0].Message.Content
	}
	h1, first := ask(t, srv, body)
	h2, second := ask(t, srv, body)
	if h1 != "miss" || h2 != "hit" {
		t.Fatalf("cache %q then %q, want miss then hit", h1, h2)
	}
	if a, b := text(first), text(second); a != b || a == "" {
		t.Errorf("the hit's text %q, the continued stream's %q", b, a)
	}
}

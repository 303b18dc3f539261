package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/omnigate/omnigate/internal/config"
)

// sseBody joins chunks into an SSE stream ending in [DONE].
func sseBody(chunks ...string) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "data: %s\n\n", c)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

const head = `"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"qwen3-omni-flash"`

func TestStreamOnlyAggregation(t *testing.T) {
	pcm := []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10")
	// Pieces padded one by one, as Model Studio sends them.
	padded := []string{base64.StdEncoding.EncodeToString(pcm[:5]), base64.StdEncoding.EncodeToString(pcm[5:11]), base64.StdEncoding.EncodeToString(pcm[11:])}
	// One base64 text cut at arbitrary places.
	whole := base64.StdEncoding.EncodeToString(pcm)
	cut := []string{whole[:3], whole[3:10], whole[10:]}
	audioChunks := func(pieces []string) []string {
		out := []string{`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","audio":{"id":"audio_1","transcript":"Hel"}}}]}`}
		for i, p := range pieces {
			tr := ""
			if i == 0 {
				tr = "lo"
			}
			out = append(out, `{`+head+`,"choices":[{"index":0,"delta":{"audio":{"data":"`+p+`","transcript":"`+tr+`","expires_at":1700003600}}}]}`)
		}
		return append(out,
			`{`+head+`,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{`+head+`,"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}`)
	}
	audioWant := `{"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"qwen3-omni-7b","choices":[{"index":0,"message":{"role":"assistant","content":null,"audio":{"id":"audio_1","data":"` + whole + `","expires_at":1700003600,"transcript":"Hello"}},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}`

	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"text", []string{
			`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{"content":"Hello"}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{"content":", world"},"finish_reason":"stop"}]}`,
			`{` + head + `,"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
		}, `{"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"qwen3-omni-7b","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`},
		{"tool calls merged by index", []string{
			`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":""}}]}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Rome\"}"}},{"index":1,"function":{"arguments":"{}"}}]}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		}, `{"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"qwen3-omni-7b","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}},{"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}]}`},
		{"audio padded pieces", audioChunks(padded), audioWant},
		{"audio cut anywhere", audioChunks(cut), audioWant},
		{"two choices", []string{
			`{` + head + `,"choices":[{"index":1,"delta":{"role":"assistant","content":"B"}}]}`,
			`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"think","content":"A"},"finish_reason":"stop"}]}`,
			`{` + head + `,"choices":[{"index":1,"delta":{},"finish_reason":"length"}]}`,
		}, `{"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"qwen3-omni-7b","choices":[{"index":0,"message":{"role":"assistant","content":"A","reasoning_content":"think"},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"B"},"logprobs":null,"finish_reason":"length"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := make(chan string, 1)
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				sent <- string(b)
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, sseBody(tt.chunks...))
			})
			o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", UpstreamModel: "qwen3-omni-flash", StreamOnly: true, Dialect: DialectModelStudio})
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"qwen3-omni-7b","stream":false,"messages":[]}`, "qwen3-omni-7b", false))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := <-sent; got != `{"stream_options":{"include_usage":true},"model":"qwen3-omni-flash","stream":true,"messages":[]}` {
				t.Errorf("upstream got body %s", got)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !json.Valid(got) {
				t.Error("not valid JSON")
			}
		})
	}
}

func TestStreamOnlyErrors(t *testing.T) {
	tests := []struct {
		name, body, code string
	}{
		{"error event", "data: {" + head + `,"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n" +
			`data: {"error":{"message":"Output data may contain inappropriate content.","type":"data_inspection_failed","code":"data_inspection_failed"}}` + "\n\n", CodeContentFilter},
		{"cut before finish", "data: {" + head + `,"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n", CodeUpstreamUnavailable},
		{"cut mid event", "data: {" + head + `,"choices":[{"index":0,"delta":{"con`, CodeUpstreamUnavailable},
		{"malformed event", "data: {nope}\n\n", CodeUpstreamUnavailable},
		{"bad audio", "data: {" + head + `,"choices":[{"index":0,"delta":{"audio":{"data":"!!!!"}},"finish_reason":"stop"}]}` + "\n\n", CodeUpstreamUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, tt.body)
			})
			o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", StreamOnly: true, Dialect: DialectModelStudio})
			_, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
			if ae := asAPIError(t, err, http.StatusBadGateway, tt.code); !ae.Upstream {
				t.Error("Upstream not set")
			}
		})
	}
}

func TestStreamOnlyStreamingRequestPassesThrough(t *testing.T) {
	stream := sseBody(`{` + head + `,"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}`)
	sent := make(chan string, 1)
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sent <- string(b)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	})
	o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", StreamOnly: true})
	req := `{"model":"m","stream":true}`
	resp, err := o.Do(context.Background(), chatRequest(t, req, "m", true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != stream || <-sent != req {
		t.Errorf("streaming request was changed: got %q", got)
	}
}

func TestStreamOnlyUpstreamAnswersJSON(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"up","choices":[]}`)
	})
	o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", UpstreamModel: "up", StreamOnly: true})
	resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"pub"}`, "pub", false))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want := `{"id":"c","object":"chat.completion","model":"pub","choices":[]}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

package limits

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

func intp(n int) *int { return &n }

// testModel is qwen3-omni-30b-like: text+image+audio in, 4096 max tokens.
func testModel(onViolation string) *catalog.Model {
	return &catalog.Model{
		Name: "qwen3-omni-30b", ContextWindow: 8192,
		Input:  catalog.Modalities(catalog.Text | catalog.Image | catalog.Audio),
		Output: catalog.Modalities(catalog.Text),
		Limits: config.Limits{MaxTokens: 4096, Temperature: &config.Range{Min: 0, Max: 2}, TopP: &config.Range{Min: 0, Max: 1},
			MaxN: 4, Media: config.MediaLimit{Image: intp(2), Audio: intp(1)}, OnViolation: onViolation},
	}
}

func img(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `{"type":"image_url","image_url":{"url":"https://x/` + string(rune('a'+i)) + `.png"}}`
	}
	return strings.Join(parts, ",")
}

func TestCheckRejects(t *testing.T) {
	audioModel := testModel("reject")
	audioModel.AudioOut = true
	textOnly := testModel("clamp") // media violations are rejected even when clamping
	textOnly.Input = catalog.Modalities(catalog.Text)
	tests := []struct {
		name  string
		body  string
		model *catalog.Model
		param string
		msg   string
	}{
		{"max_tokens", chat(`"max_tokens":9000`), testModel("reject"), "max_tokens", "max_tokens is 9000 but qwen3-omni-30b allows at most 4096."},
		{"max_completion_tokens", chat(`"max_completion_tokens":9000`), testModel(""), "max_completion_tokens", "max_completion_tokens is 9000 but qwen3-omni-30b allows at most 4096."},
		{"temperature", chat(`"temperature":2.5`), testModel("reject"), "temperature", "temperature is 2.5 but qwen3-omni-30b allows values in [0, 2]."},
		{"top_p", chat(`"top_p":-0.1`), testModel("reject"), "top_p", "top_p is -0.1 but qwen3-omni-30b allows values in [0, 1]."},
		{"n", chat(`"n":5`), testModel("reject"), "n", "n is 5 but qwen3-omni-30b allows at most 4."},
		{"video not accepted", part(`{"type":"text","text":"a"},{"type":"video_url","video_url":{"url":"https://x/v.mp4"}}`), testModel("reject"), "messages[0].content[1]", "does not accept video input"},
		{"image not accepted", part(img(1)), textOnly, "messages[0].content[0]", "The model qwen3-omni-30b does not accept image input."},
		{"too many images", msgs(`{"role":"user","content":[` + img(2) + `]},{"role":"user","content":[` + img(1) + `]}`), testModel("clamp"), "messages[1].content[0]", "The request has 3 image parts but qwen3-omni-30b accepts at most 2."},
		{"audio limit zero", part(`{"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}}`), func() *catalog.Model { m := testModel(""); m.Limits.Media.Audio = intp(0); return m }(), "messages[0].content[0]", "does not accept audio input"},
		{"audio out via modalities", chat(`"modalities":["text","audio"],"audio":{"voice":"v","format":"wav"}`), testModel("clamp"), "modalities", "The model qwen3-omni-30b cannot answer with audio."},
		{"audio out via audio object", chat(`"audio":{"voice":"v","format":"wav"}`), testModel(""), "audio", "cannot answer with audio"},
		{"prompt over window", msgs(`{"role":"user","content":"` + strings.Repeat("word ", 8000) + `"}`), testModel("clamp"), "messages", "The prompt is at least 9000 tokens, more than the context window of qwen3-omni-30b (8192 tokens)."},
		{"prompt plus max_tokens", `{"model":"m","max_tokens":4000,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 5000) + `"}]}`, testModel("reject"), "max_tokens", "so at most 2567 are left"},
		{"completions prompt", `{"model":"m","prompt":"` + strings.Repeat("abcd", 10000) + `"}`, testModel(""), "prompt", "more than the context window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r request.Request
			ep := request.Chat
			if strings.Contains(tt.body, `"prompt"`) {
				ep = request.Completions
			}
			if err := request.Parse(ep, []byte(tt.body), &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c, err := Check(&r, tt.model)
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Validate = %v, %v; want *apierror.Error", c, err)
			}
			if diff := cmp.Diff(errView{400, tt.param}, errView{ae.Status, ae.Param}); diff != "" {
				t.Errorf("%v (-want +got):\n%s", err, diff)
			}
			if !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ae.Message, tt.msg)
			}
		})
	}
}

func TestCheckClamps(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		header string
		want   map[string]any // parameters of the spliced body
	}{
		{"none", chat(`"max_tokens":100,"temperature":1`), "", map[string]any{"max_tokens": 100.0, "temperature": 1.0}},
		{"max_tokens", chat(`"max_tokens":9000`), "max_tokens=4096", map[string]any{"max_tokens": 4096.0}},
		{"several", chat(`"temperature": 3.5 ,"max_completion_tokens":100000,"top_p":7,"n":9`), "max_completion_tokens=4096, temperature=2, top_p=1, n=4",
			map[string]any{"temperature": 2.0, "max_completion_tokens": 4096.0, "top_p": 1.0, "n": 4.0}},
		{"negative temperature", chat(`"temperature":-1`), "temperature=0", map[string]any{"temperature": 0.0}},
		{"context window", `{"model":"m","max_tokens":4000,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 5000) + `"}]}`,
			"max_tokens=2567", map[string]any{"max_tokens": 2567.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r request.Request
			if err := request.Parse(request.Chat, []byte(tt.body), &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c, err := Check(&r, testModel("clamp"))
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if diff := cmp.Diff(tt.header, c.Header()); diff != "" {
				t.Errorf("Header (-want +got):\n%s", diff)
			}
			out := []byte(tt.body)
			if len(c) > 0 {
				out = c.Apply(&r, out)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("spliced body %s: %v", out, err)
			}
			for k, v := range tt.want {
				if diff := cmp.Diff(v, got[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			// The clamped body validates cleanly.
			var r2 request.Request
			if err := request.Parse(request.Chat, out, &r2); err != nil {
				t.Fatalf("re-Parse: %v", err)
			}
			if c2, err := Check(&r2, testModel("clamp")); err != nil || len(c2) != 0 {
				t.Errorf("re-Validate = %v, %v; want nothing to clamp", c2, err)
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	m := testModel("reject")
	m.AudioOut = true
	body := part(img(2) + `,{"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}}`)
	var r request.Request
	if err := request.Parse(request.Chat, []byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if c, err := Check(&r, m); err != nil || c != nil {
		t.Errorf("Validate = %v, %v", c, err)
	}
	noLimits := &catalog.Model{Name: "x", Input: catalog.Modalities(catalog.Text | catalog.Video)}
	if err := request.Parse(request.Chat, []byte(chat(`"temperature":9,"max_tokens":1000000,"n":100`)), &r); err != nil {
		t.Fatal(err)
	}
	if c, err := Check(&r, noLimits); err != nil || c != nil {
		t.Errorf("no limits: Validate = %v, %v", c, err)
	}
}

func chat(extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"model":"m","messages":[{"role":"user","content":"hi"}]` + extra + `}`
}

func msgs(m string) string { return `{"model":"m","messages":[` + m + `]}` }

// part wraps one content part into a chat body.
func part(p string) string { return msgs(`{"role":"user","content":[` + p + `]}`) }

type errView struct {
	Status int
	Param  string
}

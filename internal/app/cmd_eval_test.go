package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/eval"
	"github.com/omnigate/omnigate/internal/sim"
)

// quantizedYAML is one model on two simulator deployments, a full
// precision one and its int4 variant.
const quantizedYAML = `models:
  - name: qwen3-omni-7b
    aliases: [small]
    deployments:
      - {name: sim-bf16, kind: sim, profile: instant, quantization: bf16}
      - {name: sim-int4, kind: sim, profile: instant, quantization: awq-int4}
`

// writeEvalFile writes text to name in dir and returns its path.
func writeEvalFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadYAML parses, completes and validates a config.
func loadYAML(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	return cfg
}

// runEvalCmd runs omnigate eval on a frozen clock (latencies read 0) and
// returns its stdout and the error.
func runEvalCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := evalMain(context.Background(), args, &stdout, &stderr, clock.NewFake(time.Unix(0, 0)))
	if testing.Verbose() {
		t.Logf("stderr:\n%s", stderr.String())
	}
	return stdout.String(), err
}

// checkGolden compares got with testdata/eval/name, rewriting it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "eval", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// evalBody is the request omnigate eval sends for an item.
func evalBody(model string, messages json.RawMessage, maxTokens int) string {
	return fmt.Sprintf(`{"model":%q,"messages":%s,"temperature":0,"max_tokens":%d,"logprobs":true}`, model, messages, maxTokens)
}

// referenceSet makes a 300-item prompt set (prompts and message lists,
// several max_tokens) whose references are the answers of the
// deployment dep of cfg's qwen3-omni-7b, asked first, alone.
func referenceSet(t *testing.T, cfg *config.Config, dep string) string {
	t.Helper()
	dc, err := deploymentConfig(cfg, "qwen3-omni-7b", dep)
	if err != nil {
		t.Fatal(err)
	}
	_, srv := newTestGateway(t, dc)
	topics := []string{"the tallest mountain", "the speed of light", "a prime number", "photosynthesis", "the Roman empire", "a sonnet", "tides", "the boiling point of water"}
	var b strings.Builder
	for i := range 300 {
		text := fmt.Sprintf("Question %d: tell me about %s.", i, topics[i%len(topics)])
		item := map[string]any{"id": fmt.Sprintf("q%03d", i)}
		var messages json.RawMessage
		if i%3 == 0 {
			messages, _ = json.Marshal([]map[string]string{{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}})
			item["messages"] = messages
		} else {
			messages, _ = json.Marshal([]map[string]string{{"role": "user", "content": text}})
			item["prompt"] = text
		}
		maxTokens := eval.DefaultMaxTokens
		if i%5 != 0 {
			maxTokens = 8 + i%24
			item["max_tokens"] = maxTokens
		}
		resp, body := post(t, srv.URL+"/v1/chat/completions", "application/json", evalBody("qwen3-omni-7b", messages, maxTokens))
		var answer struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &answer) != nil || len(answer.Choices) != 1 || answer.Choices[0].Message.Content == "" {
			t.Fatalf("item %d: %d %s", i, resp.StatusCode, body)
		}
		item["reference"] = answer.Choices[0].Message.Content
		line, _ := json.Marshal(item)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestEvalQuantizedVariants: the int4 deployment against the bf16 one on
// 300 items whose references are the bf16 deployment's answers: bf16 is
// right on all of them, int4 answers the same as bf16 on about 1 − its
// divergence and, on those, its logprobs are lower by its shift. The
// text and JSON reports are golden files.
func TestEvalQuantizedVariants(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeEvalFile(t, dir, "omnigate.yaml", quantizedYAML)
	set := writeEvalFile(t, dir, "set.jsonl", referenceSet(t, loadYAML(t, quantizedYAML), "sim-bf16"))
	answers := filepath.Join(dir, "answers.jsonl")
	args := []string{"--config", cfgPath, "--prompts", set, "--target", "qwen3-omni-7b/sim-bf16", "--target", "qwen3-omni-7b/sim-int4"}

	out, err := runEvalCmd(t, append(args, "--json", "--out", answers)...)
	if err != nil {
		t.Fatal(err)
	}
	var r eval.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Targets) != 2 {
		t.Fatalf("%v in %s", err, out)
	}
	q := sim.QuantizationFor("awq-int4")
	bf16, int4 := r.Targets[0], r.Targets[1]
	t.Logf("int4: accuracy %.4f, agreement %.4f over %d, logprob difference %.9f over %d items", *int4.Accuracy, *int4.Agreement, int4.Compared, *int4.LogprobDiff, int4.LogprobItems)
	if r.Items != 300 || r.WithReference != 300 || bf16.Errors != 0 || int4.Errors != 0 {
		t.Errorf("items %d, with a reference %d, errors %d and %d", r.Items, r.WithReference, bf16.Errors, int4.Errors)
	}
	if *bf16.Accuracy != 1 || bf16.Agreement != nil || bf16.LogprobDiff != nil {
		t.Errorf("bf16: accuracy %v, agreement %v, logprob difference %v; want 1 and none against itself", *bf16.Accuracy, bf16.Agreement, bf16.LogprobDiff)
	}
	want := 1 - q.Divergence
	if math.Abs(*int4.Accuracy-want) > 0.05 || math.Abs(*int4.Agreement-want) > 0.05 || int4.Compared != 300 {
		t.Errorf("int4: accuracy %v, agreement %v over %d items; want %v ± 0.05 over 300", *int4.Accuracy, *int4.Agreement, int4.Compared, want)
	}
	if math.Abs(*int4.LogprobDiff+q.LogprobShift) > 1e-6 || int4.LogprobItems != int4.Correct {
		t.Errorf("int4: logprob difference %v over %d items; want %v over the %d answered the same", *int4.LogprobDiff, int4.LogprobItems, -q.LogprobShift, int4.Correct)
	}
	if bf16.PromptTokens == 0 || bf16.PromptTokens != int4.PromptTokens || bf16.CompletionTokens == 0 {
		t.Errorf("tokens: bf16 %d+%d, int4 %d+%d", bf16.PromptTokens, bf16.CompletionTokens, int4.PromptTokens, int4.CompletionTokens)
	}
	checkGolden(t, "quantized.json", out)

	text, err := runEvalCmd(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "quantized.txt", text)

	f, err := os.Open(answers)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, wrong := 0, 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var a struct {
			Target  string
			Correct *bool
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.Correct == nil {
			t.Fatalf("answers line %d: %v in %s", lines+1, err, sc.Bytes())
		}
		if !*a.Correct {
			wrong++
		}
	}
	if lines != 600 || wrong != 300-int4.Correct {
		t.Errorf("answers file: %d lines, %d wrong; want 600 and %d", lines, wrong, 300-int4.Correct)
	}
}

// fakeUpstream answers from answers, keyed by the last message's
// content, and refuses logprobs as an engine without them does.
func fakeUpstream(t *testing.T, answers map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Logprobs *bool
			Messages []struct{ Content string }
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Messages) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if body.Logprobs != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"message":"logprobs is not supported for this model","type":"invalid_request_error","param":"logprobs","code":null}}`)
			return
		}
		content, _ := json.Marshal(answers[body.Messages[len(body.Messages)-1].Content])
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`, content)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEvalMatchModes: each match mode scores answers through the whole
// command, on a model whose engine refuses logprobs (dropped once, and
// noted); a simulator model beside it has logprobs, but no baseline's to
// be compared with.
func TestEvalMatchModes(t *testing.T) {
	set := `{"id": "exact-yes", "prompt": "capital of France?", "reference": "Paris"}
{"id": "exact-no", "prompt": "capital of Italy?", "reference": "Rome"}
{"id": "contains-yes", "prompt": "largest planet?", "reference": "Jupiter", "match": "contains"}
{"id": "contains-no", "prompt": "smallest planet?", "reference": "Mercury", "match": "contains"}
{"id": "choice-yes", "prompt": "2+2? A) 3 B) 4 C) 5", "reference": "B", "match": "choice"}
{"id": "choice-no", "prompt": "3+3? A) 6 B) 7 C) 8", "reference": "A", "match": "choice"}
{"id": "no-reference", "messages": [{"role": "user", "content": "say hi"}]}
`
	up := fakeUpstream(t, map[string]string{
		"capital of France?":  " paris. ",
		"capital of Italy?":   "It is Rome.",
		"largest planet?":     "The largest planet is Jupiter!",
		"smallest planet?":    "Mercurial, I'd say",
		"2+2? A) 3 B) 4 C) 5": "The answer is (B).",
		"3+3? A) 6 B) 7 C) 8": "C",
		"say hi":              "hi",
	})
	dir := t.TempDir()
	cfgPath := writeEvalFile(t, dir, "omnigate.yaml", fmt.Sprintf(`models:
  - name: plain
    deployments: [{name: fake, kind: openai, url: %q}]
  - name: qwen3-omni-7b
    deployments: [{name: sim, kind: sim, profile: instant}]
`, up.URL+"/v1"))
	setPath := writeEvalFile(t, dir, "set.jsonl", set)
	out, err := runEvalCmd(t, "--config", cfgPath, "--prompts", setPath, "--target", "plain", "--target", "qwen3-omni-7b", "--concurrency", "2")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "match.txt", out)
	if !strings.Contains(out, "plain: logprobs dropped: the gateway refused them (logprobs is not supported for this model)") {
		t.Errorf("no note of the dropped logprobs in\n%s", out)
	}
	if !strings.Contains(out, "          plain      7       0        3     50.0%") {
		t.Errorf("plain should be right on 3 of the 6 items with a reference:\n%s", out)
	}
}

// TestEvalTargetsAndSets: what the command refuses, with the reason.
func TestEvalTargetsAndSets(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeEvalFile(t, dir, "omnigate.yaml", quantizedYAML)
	good := writeEvalFile(t, dir, "good.jsonl", `{"id": "a", "prompt": "hello"}`+"\n")
	bad := writeEvalFile(t, dir, "bad.jsonl", `{"id": "a", "prompt": "hello"}`+"\n"+`{"id": "b", "prompt": "x", "match": "regex"}`+"\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad line", []string{"--prompts", bad, "--target", "small"}, bad + `: line 2: "match": unknown mode "regex" (exact, contains or choice)`},
		{"missing set", []string{"--prompts", filepath.Join(dir, "none.jsonl"), "--target", "small"}, "no such file"},
		{"unknown model", []string{"--prompts", good, "--target", "qwen3-omni-9b"}, `--target "qwen3-omni-9b": unknown model (models: qwen3-omni-7b, small)`},
		{"unknown deployment", []string{"--prompts", good, "--target", "small/sim-fp8"}, `--target "small/sim-fp8": model qwen3-omni-7b has no deployment "sim-fp8" (deployments: sim-bf16, sim-int4)`},
		{"unknown model of a deployment", []string{"--prompts", good, "--target", "big/sim-bf16"}, `--target "big/sim-bf16": unknown model "big"`},
		{"no target", []string{"--prompts", good}, "usage"},
		{"url and config", []string{"--prompts", good, "--target", "small", "--url", "http://127.0.0.1:1"}, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runEvalCmd(t, append([]string{"--config", cfgPath}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// An alias is a model target; a deployment may be named through one.
	out, err := runEvalCmd(t, "--config", cfgPath, "--prompts", good, "--target", "small", "--target", "small/sim-int4")
	if err != nil || !strings.Contains(out, "small/sim-int4      1       0") {
		t.Errorf("alias targets: %v\n%s", err, out)
	}
}

// TestEvalURL: --url evaluates the models of a running gateway (here one
// with API keys, the key from OMNIGATE_API_KEY) and refuses deployment
// targets, which only a gateway built from the config can isolate.
func TestEvalURL(t *testing.T) {
	cfg := loadYAML(t, quantizedYAML)
	cfg.Auth.Keys = []config.APIKey{{Name: "eval", Hash: auth.Hash("sk-eval")}}
	srv := startGateway(t, cfg)
	dir := t.TempDir()
	var set strings.Builder
	for i := range 20 {
		fmt.Fprintf(&set, `{"id": "q%d", "prompt": "question %d", "max_tokens": 16}`+"\n", i, i)
	}
	setPath := writeEvalFile(t, dir, "set.jsonl", set.String())

	if _, err := runEvalCmd(t, "--url", srv.URL, "--prompts", setPath, "--target", "small"); err == nil || !strings.Contains(err.Error(), "--url: GET /v1/models: 401") {
		t.Errorf("without a key: %v", err)
	}
	t.Setenv(envAPIKey, "sk-eval")
	out, err := runEvalCmd(t, "--url", srv.URL+"/", "--prompts", setPath, "--target", "qwen3-omni-7b", "--target", "small", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r eval.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Targets) != 2 {
		t.Fatalf("%v in %s", err, out)
	}
	for _, tr := range r.Targets {
		if tr.Items != 20 || tr.Errors != 0 || tr.CompletionTokens == 0 {
			t.Errorf("%s: %+v", tr.Target, tr)
		}
	}
	if r.Targets[1].LogprobDiff == nil || r.Targets[1].Agreement == nil {
		t.Errorf("small against qwen3-omni-7b: %+v", r.Targets[1])
	}
	for target, want := range map[string]string{
		"qwen3-omni-7b/sim-int4": `--target "qwen3-omni-7b/sim-int4": ` + srv.URL + ` serves no model of that name, and a MODEL/DEPLOYMENT target needs a gateway built from the config`,
		"qwen3-omni-9b":          `--target "qwen3-omni-9b": ` + srv.URL + ` serves no model of that name (models: `,
	} {
		if _, err := runEvalCmd(t, "--url", srv.URL, "--prompts", setPath, "--target", target); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--target %s: error %v, want one containing %q", target, err, want)
		}
	}
}

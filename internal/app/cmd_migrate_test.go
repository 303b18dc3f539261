package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrate moves requests validated on the small tier (max_tokens up
// to 8192) to the large one (4096), as the default config has them.
func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	out := filepath.Join(dir, "out.jsonl")
	os.WriteFile(in, []byte(strings.Join([]string{
		`{"model":"small","max_tokens":8192,"messages":[{"role":"user","content":"Write a long story."}]}`,
		`{"model":"small","max_tokens":1000,"temperature":0.7,"messages":[{"role":"user","content":"hi"}]}`,
		`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"small","max_tokens":6000,"messages":[{"role":"user","content":"x"}]}}`,
		`{"model":"small","temperature":3,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"small","messages":[]}`,
		`{"model":"small","prompt":"once upon a time","max_tokens":5}`,
		`{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"request","model":"qwen3-omni-7b","request_body":"{\"model\":\"small\",\"max_tokens\":5000,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"}`,
		`{"time":"2026-12-01T10:00:01Z","level":"INFO","msg":"request","model":"qwen3-omni-7b"}`,
	}, "\n")), 0o644)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"migrate", "--from", "small", "--to", "large", "--rewrite", out, in}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got := stdout.String()
	for _, want := range []string{
		"line 1: rejected: max_tokens is 8192 but qwen3-omni-30b allows at most 4096. (param max_tokens); rewritten with max_tokens 8192→4096",
		"line 2: pass",
		"line 3: rejected: max_tokens is 6000",
		"line 4: rejected by qwen3-omni-7b already:",
		"line 5: invalid request:",
		"line 6: pass",
		"line 7: rejected: max_tokens is 5000",
		"line 8: an access log line without its request body",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	counts := map[string]string{}
	for _, l := range strings.Split(got[strings.Index(got, "requests against"):], "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			counts[strings.Join(f[:len(f)-1], " ")] = f[len(f)-1]
		}
	}
	for k, v := range map[string]string{"pass": "2", "clamped": "0", "rejected": "3", "not checked": "2", "invalid": "1", "max_tokens": "3"} {
		if counts[k] != v {
			t.Errorf("summary %s = %q, want %s", k, counts[k], v)
		}
	}
	b, _ := os.ReadFile(out)
	wantOut := []string{
		`{"model":"qwen3-omni-30b","max_tokens":4096,"messages":[{"role":"user","content":"Write a long story."}]}`,
		`{"model":"qwen3-omni-30b","max_tokens":1000,"temperature":0.7,"messages":[{"role":"user","content":"hi"}]}`,
		`{"body":{"model":"qwen3-omni-30b","max_tokens":4096,"messages":[{"role":"user","content":"x"}]},"custom_id":"a","method":"POST","url":"/v1/chat/completions"}`,
		`{"model":"qwen3-omni-30b","prompt":"once upon a time","max_tokens":5}`,
		`{"model":"qwen3-omni-30b","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`,
	}
	if diff := cmp.Diff(wantOut, strings.Split(strings.TrimSpace(string(b)), "\n")); diff != "" {
		t.Errorf("rewritten (-want +got):\n%s", diff)
	}
	if code := Main(context.Background(), []string{"migrate", "--to", "nope", in}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `unknown model "nope"`) {
		t.Errorf("unknown target: exit %d, %s", code, stderr.String())
	}
}

func TestRouteTrainEval(t *testing.T) {
	out := filepath.Join(t.TempDir(), "scorer.json")
	var stdout, stderr bytes.Buffer
	data := "../router/testdata/routing.jsonl"
	if code := Main(context.Background(), []string{"route", "train", "--data", data, "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "trained on 1200 requests") || !strings.Contains(stdout.String(), "threshold  large share  quality  random") {
		t.Errorf("train output:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"route", "eval", "--data", data, "--scorer", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "evaluated on 1500 requests") {
		t.Errorf("eval output:\n%s", stdout.String())
	}
	if code := Main(context.Background(), []string{"route", "eval"}, &stdout, &stderr); code != 2 {
		t.Errorf("eval without --data: exit %d", code)
	}
}

package backend

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenSource is the deployment the golden inputs come from: their
// messages may name its internal model, which clients must not see.
func goldenSource(dialect string) ErrorSource {
	return ErrorSource{Dialect: dialect, Deployment: "gpu-a", Upstream: "Qwen/Secret-Internal-Model-v7", Public: "qwen3-omni-7b"}
}

// TestDialectGolden runs every testdata/dialects/<dialect>/<case>.<status>.in.json
// through NormalizeError (as from goldenSource) and compares
// {"status":N,"body":<client body>} byte for byte with
// <case>.<status>.golden.json.
func TestDialectGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/dialects/*/*.in.json")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		dialect := filepath.Base(filepath.Dir(in))
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(dialect+"/"+name, func(t *testing.T) {
			dot := strings.LastIndexByte(name, '.')
			status, err := strconv.Atoi(name[dot+1:])
			if dot < 0 || err != nil {
				t.Fatalf("file name %q lacks .<status>", in)
			}
			if !KnownDialect(dialect) {
				t.Fatalf("unknown dialect directory %q", dialect)
			}
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			e := NormalizeError(goldenSource(dialect), status, body)
			if !e.Upstream {
				t.Error("Upstream not set")
			}
			if leak := leaks(string(e.JSON())); leak != "" {
				t.Errorf("the client body shows %q", leak)
			}
			got := fmt.Appendf(nil, "{\"status\":%d,\"body\":%s}\n", e.Status, bytes.TrimSuffix(e.JSON(), []byte("\n")))
			golden := strings.TrimSuffix(in, ".in.json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestNormalizeErrorRules pins the rules that the golden files show by
// example, so a wrong -update cannot silently bless a regression.
func TestNormalizeErrorRules(t *testing.T) {
	tests := []struct {
		name, dialect string
		status        int
		body          string
		wantStatus    int
		wantType      string
		wantCode      string
		wantParam     string
	}{
		{"vllm nested type mapped", DialectVLLM, 400, `{"error":{"message":"m","type":"BadRequestError","param":"temperature","code":400}}`, 400, "invalid_request_error", "", "temperature"},
		{"vllm flat", DialectVLLM, 409, `{"object":"error","message":"m","type":"ConflictError","param":null,"code":409}`, 409, "invalid_request_error", "", ""},
		{"string code kept", DialectOpenAI, 429, `{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}`, 429, "rate_limit_error", "rate_limit_exceeded", ""},
		{"ollama string", DialectOllama, 500, `{"error":"boom"}`, 500, "server_error", "", ""},
		{"llama.cpp context", DialectLlamaCpp, 400, `{"error":{"code":400,"message":"m","type":"exceed_context_size_error","n_prompt_tokens":9,"n_ctx":8}}`, 400, "invalid_request_error", CodeContextLength, ""},
		{"vllm context wording", DialectVLLM, 400, `{"object":"error","message":"This model's maximum context length is 10 tokens.","type":"BadRequestError","code":400}`, 400, "invalid_request_error", CodeContextLength, ""},
		{"context wording ignored on 5xx", DialectVLLM, 500, `{"error":{"message":"context length bookkeeping failed","type":"InternalServerError"}}`, 500, "server_error", "", ""},
		{"model studio throttling", DialectModelStudio, 400, `{"code":"Throttling.RateQuota","message":"slow down"}`, 429, "rate_limit_error", "Throttling.RateQuota", ""},
		{"model studio api key is the gateway's", DialectModelStudio, 400, `{"code":"InvalidApiKey","message":"bad key"}`, 502, "server_error", CodeDeploymentMisconfigured, ""},
		{"model studio content filter", DialectModelStudio, 400, `{"code":"DataInspectionFailed","message":"no"}`, 400, "invalid_request_error", CodeContentFilter, ""},
		{"model studio codes only for its dialect", DialectOpenAI, 400, `{"code":"Throttling","message":"slow down"}`, 400, "invalid_request_error", "Throttling", ""},
		{"vllm cuda oom", DialectVLLM, 500, `{"error":{"message":"CUDA out of memory. Tried to allocate 2.00 GiB","type":"InternalServerError","code":500}}`, 503, "service_unavailable_error", CodeOutOfMemory, ""},
		{"simulator kv capacity", DialectVLLM, 400, `{"error":{"message":"the request needs 9000 KV-cache tokens (100 in the messages, 8900 generated) but this engine's KV cache holds only 8192 tokens","type":"BadRequestError","code":400}}`, 503, "service_unavailable_error", CodeOutOfMemory, ""},
		{"llama.cpp kv full", DialectLlamaCpp, 500, `{"error":{"code":500,"message":"failed to find free space in the KV cache","type":"server_error"}}`, 503, "service_unavailable_error", CodeOutOfMemory, ""},
		{"memory words in a context error stay context", DialectVLLM, 400, `{"error":{"message":"maximum context length is 10 tokens; out of memory otherwise","type":"BadRequestError"}}`, 400, "invalid_request_error", CodeContextLength, ""},
		{"html", DialectVLLM, 502, `<html>bad gateway</html>`, 502, "server_error", "", ""},
		{"empty", DialectVLLM, 503, ``, 503, "service_unavailable_error", "", ""},
		{"json without error fields", DialectVLLM, 500, `{"foo":1}`, 500, "server_error", "", ""},
		{"non-error status", DialectVLLM, 302, ``, 502, "server_error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NormalizeError(ErrorSource{Dialect: tt.dialect}, tt.status, []byte(tt.body))
			type view struct {
				Status            int
				Type, Code, Param string
				Upstream          bool
			}
			want := view{tt.wantStatus, tt.wantType, tt.wantCode, tt.wantParam, true}
			got := view{e.Status, e.Type, e.Code, e.Param, e.Upstream}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if e.Message == "" || strings.Contains(e.Message, "<html") {
				t.Errorf("message %q: empty or leaks the body", e.Message)
			}
			if e.Err == nil {
				t.Error("cause not kept in Err")
			}
		})
	}
}

// secrets are the things in the golden inputs no client may see.
var secrets = []string{"Secret-Internal-Model", "10.0.0.", "engine-7", "localhost:", "::1", "http://10.", "sk-live",
	"eyJ", "AKIA", "abc123secret", "9f86d08", "6a0746a1", "proj_8f3a"}

// leaks returns the first of secrets in s, or "".
func leaks(s string) string {
	for _, x := range secrets {
		if strings.Contains(s, x) {
			return x
		}
	}
	return ""
}

// TestNormalizeErrorMisconfigured: an engine that refuses the gateway's key
// or does not know the model it was sent is the gateway's misconfiguration:
// a 502 that names the public model, with the deployment and the engine's
// status in a *MisconfiguredError.
func TestNormalizeErrorMisconfigured(t *testing.T) {
	tests := []struct {
		name, dialect string
		status        int
		body          string
		engineStatus  int
	}{
		{"vllm wrong upstream_model", DialectVLLM, 404, `{"error":{"message":"The model ` + "`Qwen/Wrong-Name`" + ` does not exist.","type":"NotFoundError","param":"model","code":404}}`, 404},
		{"wrong base url", DialectVLLM, 404, `{"detail":"Not Found"}`, 404},
		{"ollama model not found", DialectOllama, 404, `{"error":"model 'Qwen/Secret-Internal-Model-v7' not found, try pulling it first"}`, 404},
		{"openai wrong key", DialectOpenAI, 401, `{"error":{"message":"Incorrect API key provided: sk-live-abcd****wxyz.","type":"invalid_request_error","code":"invalid_api_key"}}`, 401},
		{"llama.cpp wrong key", DialectLlamaCpp, 401, `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`, 401},
		{"forbidden", DialectSGLang, 403, `{"object":"error","message":"Forbidden","type":"PermissionDeniedError","code":403}`, 403},
		{"html 401 from a proxy in front", DialectVLLM, 401, `<html>401 Authorization Required</html>`, 401},
		{"proxy auth", DialectOpenAI, 407, ``, 407},
		{"model studio key, sent as 400", DialectModelStudio, 400, `{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r"}`, 401},
		{"model studio key", DialectModelStudio, 401, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}`, 401},
		{"model studio access denied", DialectModelStudio, 400, `{"code":"AccessDenied.Unpurchased","message":"Access to model denied."}`, 403},
		{"model studio model not found", DialectModelStudio, 400, `{"code":"ModelNotFound","message":"Model not exist."}`, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := goldenSource(tt.dialect)
			e := NormalizeError(src, tt.status, []byte(tt.body))
			if e.Status != 502 || e.Type != "server_error" || e.Code != CodeDeploymentMisconfigured || e.Param != "" {
				t.Errorf("got %d %s %s %q, want 502 server_error %s", e.Status, e.Type, e.Code, e.Param, CodeDeploymentMisconfigured)
			}
			if want := "The gateway could not use a deployment of qwen3-omni-7b: it is misconfigured."; e.Message != want {
				t.Errorf("message %q, want %q", e.Message, want)
			}
			var me *MisconfiguredError
			if !errors.As(e, &me) || me.Deployment != "gpu-a" || me.Status != tt.engineStatus {
				t.Fatalf("cause %v, want a *MisconfiguredError of gpu-a, status %d", e.Err, tt.engineStatus)
			}
			if !strings.Contains(me.Error(), "HTTP") {
				t.Errorf("cause %q lost the engine's answer", me.Error())
			}
		})
	}
}

// TestSanitize pins what is taken out of an engine's message, and what is
// left in it.
func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"The model `Qwen/Secret-Internal-Model-v7` does not exist. Engine at http://10.0.0.5:8000 key=sk-live-4f9a8b7c",
			"The model `qwen3-omni-7b` does not exist. Engine at [url] key=[redacted]"},
		{"Qwen/Secret-Internal-Model-v7Qwen/Secret-Internal-Model-v7", "qwen3-omni-7bqwen3-omni-7b"},
		{"upstream https://user:pw@engine.internal:8443/v1/chat?api_key=x failed", "upstream [url] failed"},
		{"see (http://10.0.0.5:8000/v1), or http://h:1/x.", "see ([url]), or [url]."},
		{"connect to 10.0.0.5:8000: refused; then 192.168.1.20", "connect to [host]: refused; then [host]"},
		{"dial [fd00::5]:8000 and [::1]:11434", "dial [host] and [host]"},
		{"gpu-a.cluster.local:8000 and localhost:30000 are down", "[host] and [host] are down"},
		{"Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"},
		{"api_key=abc123, API-KEY: 'xyz', access_token=t0k; password = hunter2", "api_key=[redacted], API-KEY: [redacted], access_token=[redacted]; password = [redacted]"},
		{"Incorrect API key provided: sk-proj-abcd****wxyz.", "Incorrect API key provided: [redacted]."},
		{"blob sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa", "blob [redacted]"},
		{"token dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB3aXRoIDEyMw== here", "token [redacted] here"},
		// What clients need stays.
		{"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion).",
			"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion)."},
		{"temperature must be in [0, 2], got 3.5 at line 1 column 20", "temperature must be in [0, 2], got 3.5 at line 1 column 20"},
		{"Field required: messages.0.content", "Field required: messages.0.content"},
		{"the key 'messages' is missing; a token limit of 4096 applies", "the key 'messages' is missing; a token limit of 4096 applies"},
		{"averyveryveryverylongwordwithoutanydigitsinitatall", "averyveryveryverylongwordwithoutanydigitsinitatall"},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in, "Qwen/Secret-Internal-Model-v7", "qwen3-omni-7b"); got != tt.want {
			t.Errorf("sanitize(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	if got := sanitize("model Qwen/X missing", "Qwen/X", ""); got != "model [model] missing" {
		t.Errorf("without a public name: %q", got)
	}
}

func TestOutOfMemory(t *testing.T) {
	tests := []struct {
		message       string
		oom, tooLarge bool
	}{
		{"CUDA out of memory. Tried to allocate 20.00 MiB", true, false},
		{"torch.OutOfMemoryError: CUDA", true, false},
		{"failed to find free space in the KV cache", true, false},
		{"KV cache pool is full", true, false},
		{"Context size has been exceeded.", true, false},
		{"llama runner process has terminated: cudaMalloc failed: out of memory", true, false},
		{"This request needs 9000 KV-cache tokens (100 in the messages, 8900 generated), which is larger than the maximum number of tokens that can be stored in KV cache (8192).", true, true},
		{"model requires more system memory (21.5 GiB) than is available (12.3 GiB)", true, false},
		{"the request needs 9000 KV-cache tokens (…) but this engine's KV cache holds only 8192 tokens", true, true},
		{"The model's max seq len (40960) is larger than the maximum number of tokens that can be stored in KV cache (16384)", true, true},
		{"temperature must be in [0, 2]", false, false},
		{"KV cache usage is 40%", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		oom, tooLarge := outOfMemory(tt.message)
		if oom != tt.oom || tooLarge != tt.tooLarge {
			t.Errorf("%q: oom %v, too large %v; want %v, %v", tt.message, oom, tooLarge, tt.oom, tt.tooLarge)
		}
	}
}

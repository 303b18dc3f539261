package backend

import (
	"bytes"
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

// TestDialectGolden runs every testdata/dialects/<dialect>/<case>.<status>.in.json
// through NormalizeError and compares {"status":N,"body":<client body>}
// byte for byte with <case>.<status>.golden.json.
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
			e := NormalizeError(dialect, status, body)
			if !e.Upstream {
				t.Error("Upstream not set")
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
		{"vllm flat", DialectVLLM, 404, `{"object":"error","message":"m","type":"NotFoundError","param":null,"code":404}`, 404, "not_found_error", "", ""},
		{"string code kept", DialectOpenAI, 429, `{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}`, 429, "rate_limit_error", "rate_limit_exceeded", ""},
		{"ollama string", DialectOllama, 500, `{"error":"boom"}`, 500, "server_error", "", ""},
		{"llama.cpp context", DialectLlamaCpp, 400, `{"error":{"code":400,"message":"m","type":"exceed_context_size_error","n_prompt_tokens":9,"n_ctx":8}}`, 400, "invalid_request_error", CodeContextLength, ""},
		{"vllm context wording", DialectVLLM, 400, `{"object":"error","message":"This model's maximum context length is 10 tokens.","type":"BadRequestError","code":400}`, 400, "invalid_request_error", CodeContextLength, ""},
		{"context wording ignored on 5xx", DialectVLLM, 500, `{"error":{"message":"context length bookkeeping failed","type":"InternalServerError"}}`, 500, "server_error", "", ""},
		{"model studio throttling", DialectModelStudio, 400, `{"code":"Throttling.RateQuota","message":"slow down"}`, 429, "rate_limit_error", "Throttling.RateQuota", ""},
		{"model studio api key", DialectModelStudio, 400, `{"code":"InvalidApiKey","message":"bad key"}`, 401, "authentication_error", "InvalidApiKey", ""},
		{"model studio content filter", DialectModelStudio, 400, `{"code":"DataInspectionFailed","message":"no"}`, 400, "invalid_request_error", CodeContentFilter, ""},
		{"model studio codes only for its dialect", DialectOpenAI, 400, `{"code":"Throttling","message":"slow down"}`, 400, "invalid_request_error", "Throttling", ""},
		{"html", DialectVLLM, 502, `<html>bad gateway</html>`, 502, "server_error", "", ""},
		{"empty", DialectVLLM, 503, ``, 503, "service_unavailable_error", "", ""},
		{"json without error fields", DialectVLLM, 500, `{"foo":1}`, 500, "server_error", "", ""},
		{"non-error status", DialectVLLM, 302, ``, 502, "server_error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NormalizeError(tt.dialect, tt.status, []byte(tt.body))
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

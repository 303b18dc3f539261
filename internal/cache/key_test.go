package cache

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const baseReq = `{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is 2+2?"}]}`

// img is a data URL of bytes, base64 encoded with line breaks every n
// characters when n > 0 (both spell the same image).
func img(bytes string, n int) string {
	b := base64.StdEncoding.EncodeToString([]byte(bytes))
	if n > 0 {
		var sb strings.Builder
		for i := 0; i < len(b); i += n {
			sb.WriteString(b[i:min(i+n, len(b))])
			sb.WriteString(`\n`)
		}
		b = sb.String()
	}
	return `data:image/png;base64,` + b
}

func imgReq(url string) string {
	return `{"model":"m","temperature":0,"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"` + url + `"}}]}]}`
}

func key(t *testing.T, model, scope, body string) Key {
	t.Helper()
	k, _, err := MakeKey(model, scope, []byte(body))
	if err != nil {
		t.Fatalf("MakeKey(%s): %v", body, err)
	}
	return k
}

// TestKeySame: spellings of one request share a key.
func TestKeySame(t *testing.T) {
	tests := []struct{ name, a, b string }{
		{"key order", baseReq, `{"messages":[{"content":"Be brief.","role":"system"},{"role":"user","content":"What is 2+2?"}],"temperature":0,"model":"m"}`},
		{"white space", baseReq, strings.ReplaceAll(baseReq, `,`, ` , `)},
		{"string escapes", baseReq, strings.Replace(baseReq, `Be brief.`, `Be \u0062rief\u002e`, 1)},
		{"number spellings", `{"temperature":0,"max_tokens":10,"top_p":0.5,"messages":[]}`, `{"temperature":0.0,"max_tokens":1e1,"top_p":5e-1,"messages":[]}`},
		{"stream and its options", baseReq, strings.Replace(baseReq, `{"model":"m",`, `{"model":"m","stream":true,"stream_options":{"include_usage":true},`, 1)},
		{"user, metadata, store", baseReq, strings.Replace(baseReq, `{"model":"m",`, `{"model":"alias","user":"u1","metadata":{"a":"b"},"store":true,`, 1)},
		{"one image, base64 with line breaks", imgReq(img("PNG-bytes-1", 0)), imgReq(img("PNG-bytes-1", 4))},
		{"media type case", imgReq(img("PNG-bytes-1", 0)), imgReq(strings.Replace(img("PNG-bytes-1", 0), "image/png", "IMAGE/PNG", 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if key(t, "m", "", tt.a) != key(t, "m", "", tt.b) {
				t.Errorf("different keys for\n%s\n%s", tt.a, tt.b)
			}
		})
	}
}

// TestKeyDifferent: anything that may change the answer changes the key.
func TestKeyDifferent(t *testing.T) {
	r := func(old, new string) string { return strings.Replace(baseReq, old, new, 1) }
	tests := []struct{ name, b string }{
		{"a changed number", r("2+2", "2+3")},
		{"a negation", r("What is", "What is not")},
		{"a different system prompt", r("Be brief.", "Be verbose.")},
		{"no system prompt", `{"model":"m","temperature":0,"messages":[{"role":"user","content":"What is 2+2?"}]}`},
		{"a role changed", r(`"role":"user"`, `"role":"assistant"`)},
		{"the turns swapped", `{"model":"m","temperature":0,"messages":[{"role":"user","content":"What is 2+2?"},{"role":"system","content":"Be brief."}]}`},
		{"temperature", r(`"temperature":0`, `"temperature":0.1`)},
		{"max_tokens", r(`{"model":"m",`, `{"model":"m","max_tokens":5,`)},
		{"seed", r(`{"model":"m",`, `{"model":"m","seed":1,`)},
		{"an unknown vendor parameter", r(`{"model":"m",`, `{"model":"m","top_k":20,`)},
		{"tools", r(`{"model":"m",`, `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],`)},
		{"tool_choice", r(`{"model":"m",`, `{"model":"m","tool_choice":"none",`)},
		{"response_format", r(`{"model":"m",`, `{"model":"m","response_format":{"type":"json_object"},`)},
		{"modalities", r(`{"model":"m",`, `{"model":"m","modalities":["text","audio"],"audio":{"voice":"Chelsie","format":"wav"},`)},
		{"n", r(`{"model":"m",`, `{"model":"m","n":2,`)},
		{"a string that looks like a number", r(`"temperature":0`, `"temperature":"0"`)},
		{"null against absent", r(`{"model":"m",`, `{"model":"m","max_tokens":null,`)},
	}
	base := key(t, "m", "", baseReq)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if key(t, "m", "", tt.b) == base {
				t.Errorf("same key as the base request for\n%s", tt.b)
			}
		})
	}
	t.Run("another model", func(t *testing.T) {
		if key(t, "m2", "", baseReq) == base {
			t.Error("same key for another public model")
		}
	})
	t.Run("another scope", func(t *testing.T) {
		if key(t, "m", "tenant-a", baseReq) == key(t, "m", "tenant-b", baseReq) {
			t.Error("same key in two scopes")
		}
	})
	t.Run("a different image", func(t *testing.T) {
		if key(t, "m", "", imgReq(img("PNG-bytes-1", 0))) == key(t, "m", "", imgReq(img("PNG-bytes-2", 0))) {
			t.Error("same key for two images")
		}
	})
	t.Run("a remote image by its URL", func(t *testing.T) {
		if key(t, "m", "", imgReq("https://example.com/a.png")) == key(t, "m", "", imgReq("https://example.com/b.png")) {
			t.Error("same key for two image URLs")
		}
	})
	t.Run("model and scope do not run together", func(t *testing.T) {
		if key(t, "ab", "c", baseReq) == key(t, "a", "bc", baseReq) {
			t.Error("model+scope boundaries are ambiguous")
		}
	})
}

func TestKeyFacts(t *testing.T) {
	tests := []struct {
		body string
		want Facts
	}{
		{baseReq, Facts{HasTemperature: true, Temperature: 0}},
		{`{"messages":[],"temperature":0.7,"seed":42}`, Facts{HasSeed: true, HasTemperature: true, Temperature: 0.7}},
		{`{"messages":[],"seed":null}`, Facts{}},
	}
	for _, tt := range tests {
		_, got, err := MakeKey("m", "", []byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.body, d)
		}
	}
}

func TestKeyRejectsBadJSON(t *testing.T) {
	if _, _, err := MakeKey("m", "", []byte(`{"messages":[`)); err == nil {
		t.Error("no error for truncated JSON")
	}
}

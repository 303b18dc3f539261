package app

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// apiError is the OpenAI error body, as a client reads it.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("not an OpenAI error body: %q", b)
		return ""
	}
	if e.Error.Code == nil {
		return ""
	}
	return *e.Error.Code
}

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, s)
	zw.Close()
	return b.String()
}

func deflated(s string) string {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	io.WriteString(zw, s)
	zw.Close()
	return b.String()
}

// TestContentEncoding: gzip and deflate bodies are decoded, within
// max_body_bytes after decoding (a small bomb is 413, not memory); other
// encodings are 415; a corrupt body is 400. The upstream sees plain JSON.
func TestContentEncoding(t *testing.T) {
	var got atomic.Value
	srv := startWithUpstream(t, recordingUpstream(&got), func(c *config.Config) { c.Server.MaxBodyBytes = 64 << 10 })
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	bomb := gzipped(`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("a", 10<<20) + `"}]}`)
	for _, tc := range []struct {
		name, encoding, body string
		status               int
		code                 string
	}{
		{"none", "", chat, 200, ""},
		{"identity", "identity", chat, 200, ""},
		{"gzip", "gzip", gzipped(chat), 200, ""},
		{"GZIP", "GZIP", gzipped(chat), 200, ""},
		{"x-gzip", "x-gzip", gzipped(chat), 200, ""},
		{"deflate", "deflate", deflated(chat), 200, ""},
		{"gzip, identity", "gzip, identity", gzipped(chat), 200, ""},
		{"concatenated gzip members", "gzip", gzipped(chat[:20]) + gzipped(chat[20:]), 200, ""},
		{"bomb", "gzip", bomb, 413, "request_too_large"},
		{"br", "br", chat, 415, "unsupported_content_encoding"},
		{"zstd", "zstd", chat, 415, "unsupported_content_encoding"},
		{"gzip twice", "gzip, gzip", gzipped(gzipped(chat)), 415, "unsupported_content_encoding"},
		{"not gzip", "gzip", chat, 400, ""},
		{"truncated gzip", "gzip", gzipped(chat)[:30], 400, ""},
		{"gzip and trailing garbage", "gzip", gzipped(chat) + "garbage", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got.Store("")
			var hdr []string
			if tc.encoding != "" {
				hdr = []string{"Content-Encoding", tc.encoding}
			}
			resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", tc.body, hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.status != 200 {
				if code := errorCode(t, b); code != tc.code {
					t.Errorf("code %q, want %q", code, tc.code)
				}
				return
			}
			want := strings.Replace(chat, `"m"`, `"upstream/m"`, 1)
			if diff := cmp.Diff(want, got.Load().(string)); diff != "" {
				t.Errorf("upstream body (-want +got):\n%s", diff)
			}
		})
	}
}

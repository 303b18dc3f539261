package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/api/openai"
)

// BenchmarkWire is one small request over a real connection, through the
// handler alone and through the Wire serve puts around it.
func BenchmarkWire(b *testing.B) {
	up := httptest.NewServer(jsonUpstream())
	defer up.Close()
	gw := benchGateway(b, up.URL)
	for _, tc := range []struct {
		name string
		wire bool
	}{{"bare", false}, {"wired", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var srv *httptest.Server
			if tc.wire {
				srv = httptest.NewServer(openai.NewWire(gw, openai.WireOptions{ReadTimeout: time.Minute, MaxBufferedBytes: 1 << 30}))
			} else {
				srv = httptest.NewServer(gw)
			}
			defer srv.Close()
			b.ReportAllocs()
			for b.Loop() {
				resp, body := postB(b, srv.URL+"/v1/chat/completions", benchRequest)
				if resp.StatusCode != 200 {
					b.Fatalf("%d %s", resp.StatusCode, body)
				}
			}
		})
	}
}

func postB(b *testing.B, url, body string) (*http.Response, []byte) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, out
}

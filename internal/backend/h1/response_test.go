package h1

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadHead(t *testing.T) {
	tests := []struct {
		name, head string
		status     string
		code       int
		header     http.Header
	}{
		{"canonical", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n", "200 OK", 200,
			http.Header{"Content-Type": {"application/json"}, "Content-Length": {"2"}}},
		{"keys canonicalised, values trimmed", "HTTP/1.1 404 Not Found\r\ncontent-type:  text/plain \t\r\nx-REQUEST-id: a\r\n\r\n", "404 Not Found", 404,
			http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"a"}}},
		{"repeated keys", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX: \r\n\r\n", "200 OK", 200,
			http.Header{"Set-Cookie": {"a=1", "b=2"}, "X": {""}}},
		{"no reason", "HTTP/1.0 503\r\n\r\n", "503", 503, http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scratch []byte
			resp, err := readHead(testReader(strings.NewReader(tt.head), 4096), &scratch)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || resp.StatusCode != tt.code {
				t.Errorf("status %q %d", resp.Status, resp.StatusCode)
			}
			if diff := cmp.Diff(tt.header, resp.Header); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadHeadLongLines(t *testing.T) {
	long := strings.Repeat("v", 10000)
	head := "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\n\r\n"
	var scratch []byte
	resp, err := readHead(testReader(strings.NewReader(head), 16), &scratch)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Long") != long {
		t.Error("long header value mangled")
	}
	huge := "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", maxHeadBytes) + "\r\n\r\n"
	if _, err := readHead(testReader(strings.NewReader(huge), 4096), &scratch); err != errHeadTooLarge {
		t.Errorf("err = %v, want errHeadTooLarge", err)
	}
}

// FuzzReadHead checks the head parser never panics, and that what it
// accepts net/http's parser reads the same way.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.0 404\r\nx-a: b\r\nX-A: c\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\nA: b\n\n",
		"HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
		"HTTP/1.1 200 OK\r\n a\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var scratch []byte
		resp, err := readHead(testReader(strings.NewReader(s), 16), &scratch)
		if err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.ProtoMajor != 1 {
			t.Fatalf("accepted status %d proto %d", resp.StatusCode, resp.ProtoMajor)
		}
		for k := range resp.Header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("key %q not canonical", k)
			}
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(s)), nil)
		if err != nil {
			return // net/http is stricter about some things (e.g. framing)
		}
		want.Body.Close()
		if want.StatusCode != resp.StatusCode {
			t.Fatalf("status %d, net/http %d", resp.StatusCode, want.StatusCode)
		}
		for k, vs := range resp.Header {
			if k == "Content-Length" || k == "Transfer-Encoding" {
				continue // net/http normalises framing fields
			}
			if !cmp.Equal(vs, want.Header[k]) {
				t.Fatalf("header %q: %q, net/http %q", k, vs, want.Header[k])
			}
		}
	})
}

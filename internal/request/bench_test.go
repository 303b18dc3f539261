package request

import (
	"encoding/json"
	"testing"
)

func BenchmarkParseChatSmall(b *testing.B)      { benchParse(b, []byte(chatSmall)) }
func BenchmarkParseChatMultimodal(b *testing.B) { benchParse(b, []byte(chatMultimodal)) }

// benchParse measures Parse of one chat body, reusing one Request as the
// handler does.
func benchParse(b *testing.B, body []byte) {
	var r Request
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(Chat, body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseChatImage1MB measures a body dominated by one base64 image.
func BenchmarkParseChatImage1MB(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i%64]
	}
	benchParse(b, []byte(part(`{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,`+string(data)+`"}}`)))
}

func BenchmarkSplice(b *testing.B) {
	body := []byte(chatSmall)
	var r Request
	if err := Parse(Chat, body, &r); err != nil {
		b.Fatal(err)
	}
	model, maxTokens := []byte(`"Qwen/Qwen2.5-Omni-7B"`), []byte("128")
	b.ReportAllocs()
	for b.Loop() {
		_ = Splice(body, Edit{Span: r.ModelSpan, Value: model}, Edit{Span: r.MaxTokensSpan, Value: maxTokens})
	}
}

// BenchmarkParseChatSmallEncodingJSON is the baseline Parse replaces:
// decoding the same body into a generic value with encoding/json.
func BenchmarkParseChatSmallEncodingJSON(b *testing.B) {
	body := []byte(chatSmall)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

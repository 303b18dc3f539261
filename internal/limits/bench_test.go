package limits

import (
	"testing"

	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/request"
)

// chatMultimodal is a chat body with text, an image, audio and video parts.
const chatMultimodal = `{"model":"qwen3-omni-30b","messages":[{"role":"user","content":[` +
	`{"type":"text","text":"Describe the picture and the sound."},` +
	`{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"high"}},` +
	`{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","format":"wav"}},` +
	`{"type":"video_url","video_url":{"url":"https://example.com/clip.mp4"}}]}],` +
	`"modalities":["text","audio"],"audio":{"voice":"Cherry","format":"wav"},"max_completion_tokens":512,"temperature":0.2}`

func BenchmarkCheck(b *testing.B) {
	var r request.Request
	if err := request.Parse(request.Chat, []byte(chatMultimodal), &r); err != nil {
		b.Fatal(err)
	}
	m := testModel("clamp")
	m.AudioOut = true
	m.Input |= catalog.Modalities(catalog.Video)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(&r, m); err != nil {
			b.Fatal(err)
		}
	}
}

package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSmartResize(t *testing.T) {
	tests := []struct {
		name                     string
		h, w, factor, minP, maxP int
		wantH, wantW             int
	}{
		{"720p video, 28 px tokens", 720, 1280, 28, 128 * 28 * 28, VideoFramePixels, 560, 1008},
		{"720p video, 32 px tokens", 720, 1280, 32, 128 * 28 * 28, VideoFramePixels, 576, 1024},
		{"720p image fits as is", 720, 1280, 28, ImageMinPixels, ImageMaxPixels, 728, 1288},
		// 22.5 rounds to even, as Python's round does.
		{"720p image, 32 px", 720, 1280, 32, ImageMinPixels, ImageMaxPixels, 704, 1280},
		{"tiny image scaled up", 20, 20, 28, ImageMinPixels, ImageMaxPixels, 56, 56},
		{"square frame capped", 1000, 1000, 28, 128 * 28 * 28, VideoFramePixels, 756, 756},
	}
	for _, tt := range tests {
		h, w := SmartResize(tt.h, tt.w, tt.factor, tt.minP, tt.maxP)
		if h != tt.wantH || w != tt.wantW {
			t.Errorf("%s: %dx%d, want %dx%d", tt.name, h, w, tt.wantH, tt.wantW)
		}
	}
}

func TestVideoFrames(t *testing.T) {
	for _, c := range []struct {
		seconds float64
		want    int
	}{{0, 0}, {0.3, 4}, {1, 4}, {2.6, 4}, {3, 6}, {15, 30}, {15.4, 30}, {60, 120}} {
		if got := VideoFrames(c.seconds, 2); got != c.want {
			t.Errorf("VideoFrames(%g) = %d, want %d", c.seconds, got, c.want)
		}
	}
}

func TestPromptTokens(t *testing.T) {
	q7 := mustModel(t, "qwen3-omni-7b")
	q3 := mustModel(t, "qwen3-omni-30b")
	tests := []struct {
		name  string
		m     *Model
		media Media
		want  Tokens
	}{
		{"text only", q7, Media{}, Tokens{Text: 512}},
		// 30 frames = 15 temporal patches of 20x36 tokens (560x1008 / 28^2);
		// the soundtrack at 25 tokens a second, 50 encoder frames a second.
		{"7B, 15 s of 720p video with sound", q7, Media{VideoSeconds: 15, VideoAudio: true},
			Tokens{Text: 512, Video: 15 * 720, VideoAudio: 375, VisionPatches: 15 * 720 * 4, AudioFrames: 750}},
		// 18x32 tokens per temporal patch, 13 audio tokens a second.
		{"30B, 15 s of video with sound", q3, Media{VideoSeconds: 15, VideoAudio: true},
			Tokens{Text: 512, Video: 15 * 576, VideoAudio: 195, VisionPatches: 15 * 576 * 4, AudioFrames: 195}},
		{"30B, silent video", q3, Media{VideoSeconds: 10},
			Tokens{Text: 512, Video: 10 * 576, VisionPatches: 10 * 576 * 4}},
		// A 720p image: 728x1288 is 26x46 tokens of 28 px.
		{"7B, two images", q7, Media{Images: 2}, Tokens{Text: 512, Image: 2 * 26 * 46, VisionPatches: 2 * 26 * 46 * 4}},
		{"7B, 672x672 image", q7, Media{Images: 1, ImageWidth: 672, ImageHeight: 672}, Tokens{Text: 512, Image: 576, VisionPatches: 2304}},
		{"30B, 10 s of audio", q3, Media{AudioSeconds: 10}, Tokens{Text: 512, Audio: 130, AudioFrames: 130}},
		{"7B, 10 s of audio", q7, Media{AudioSeconds: 10}, Tokens{Text: 512, Audio: 250, AudioFrames: 500}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, PromptTokens(tt.m, tt.media)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	text := &Model{ID: "x", Text: Text{Layers: 1, Hidden: 8, Heads: 1, Vocab: 8}}
	if got := PromptTokens(text, Media{VideoSeconds: 10, Images: 2, AudioSeconds: 5}); got != (Tokens{Text: 512}) {
		t.Errorf("a text model counts media: %+v", got)
	}
}

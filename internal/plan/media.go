package plan

import "math"

// The Qwen Omni processors' defaults (qwen-omni-utils, QwenLM/Qwen2.5-Omni
// qwen-omni-utils/src/qwen_omni_utils/v2_5/vision_process.py; Qwen3-Omni
// uses the same package): what a video becomes before the encoder sees it.
const (
	// VideoFPS is the rate frames are sampled at (FPS).
	VideoFPS = 2.0
	// VideoMinFrames is the fewest frames a video is cut into
	// (FPS_MIN_FRAMES).
	VideoMinFrames = 4
	// VideoFramePixels caps one frame's area (VIDEO_MAX_PIXELS, 768 x 28 x
	// 28): a 720p frame is scaled down to fit it.
	VideoFramePixels = 768 * 28 * 28
	// ImageMaxPixels caps an image's area (MAX_PIXELS, 16384 x 28 x 28).
	ImageMaxPixels = 16384 * 28 * 28
	// ImageMinPixels is the smallest area an image is scaled up to
	// (MIN_PIXELS).
	ImageMinPixels = 4 * 28 * 28
	// TextTokens is the text around the media in one request: the chat
	// template, a system prompt, the question and a short answer.
	TextTokens = 512
)

// Media is what one request carries besides its text.
type Media struct {
	VideoSeconds float64 `json:"video_seconds,omitempty"`
	// VideoWidth and VideoHeight are the video's frame size before
	// resizing (default 1280 x 720).
	VideoWidth  int `json:"video_width,omitempty"`
	VideoHeight int `json:"video_height,omitempty"`
	// VideoAudio sends the video's soundtrack too (use_audio_in_video, as
	// the Qwen examples and memory tables do).
	VideoAudio   bool    `json:"video_audio,omitempty"`
	AudioSeconds float64 `json:"audio_seconds,omitempty"`
	Images       int     `json:"images,omitempty"`
	// ImageWidth and ImageHeight are each image's size (default 1280 x 720).
	ImageWidth  int `json:"image_width,omitempty"`
	ImageHeight int `json:"image_height,omitempty"`
}

// Tokens is one request's prompt by kind.
type Tokens struct {
	Text       int `json:"text"`
	Video      int `json:"video"`
	VideoAudio int `json:"video_audio"`
	Audio      int `json:"audio"`
	Image      int `json:"image"`
	// VideoPatches is the patches the vision encoder sees for the video
	// and images (each token merges merge x merge of them).
	VisionPatches int `json:"vision_patches"`
	// AudioFrames is the audio encoder's sequence for all the audio.
	AudioFrames int `json:"audio_frames"`
}

// Total is the prompt's length.
func (t Tokens) Total() int { return t.Text + t.Video + t.VideoAudio + t.Audio + t.Image }

// Media is the prompt's multimodal part.
func (t Tokens) Media() int { return t.Video + t.VideoAudio + t.Audio + t.Image }

// SmartResize is the Qwen processors' smart_resize: both sides become
// multiples of factor, the area lands in [minPixels, maxPixels], the
// aspect ratio stays as close as it can.
func SmartResize(height, width, factor, minPixels, maxPixels int) (int, int) {
	h := max(factor, roundBy(float64(height), factor))
	w := max(factor, roundBy(float64(width), factor))
	if h*w > maxPixels {
		beta := math.Sqrt(float64(height*width) / float64(maxPixels))
		h = floorBy(float64(height)/beta, factor)
		w = floorBy(float64(width)/beta, factor)
	} else if h*w < minPixels {
		beta := math.Sqrt(float64(minPixels) / float64(height*width))
		h = ceilBy(float64(height)*beta, factor)
		w = ceilBy(float64(width)*beta, factor)
	}
	return h, w
}

// roundBy rounds half to even, as Python's round does.
func roundBy(x float64, f int) int { return int(math.RoundToEven(x/float64(f))) * f }
func floorBy(x float64, f int) int { return int(math.Floor(x/float64(f))) * f }
func ceilBy(x float64, f int) int  { return int(math.Ceil(x/float64(f))) * f }

// VideoFrames is how many frames a video of seconds is sampled into: 2 per
// second, at least VideoMinFrames, a multiple of the temporal patch.
func VideoFrames(seconds float64, temporalPatch int) int {
	if seconds <= 0 {
		return 0
	}
	n := seconds * VideoFPS
	n = max(n, float64(ceilBy(VideoMinFrames, temporalPatch)))
	return max(temporalPatch, floorBy(n, temporalPatch))
}

// PromptTokens counts one request's prompt on model m.
func PromptTokens(m *Model, media Media) Tokens {
	t := Tokens{Text: TextTokens}
	if v := m.Vision; v != nil {
		f := v.TokenPixels()
		if media.VideoSeconds > 0 {
			w, h := orDefault(media.VideoWidth, media.VideoHeight)
			rh, rw := SmartResize(h, w, f, 128*28*28, VideoFramePixels)
			perFrame := (rh / v.PatchSize) * (rw / v.PatchSize)
			frames := VideoFrames(media.VideoSeconds, v.TemporalPatch)
			patches := frames / v.TemporalPatch * perFrame
			t.Video = patches / (v.MergeSize * v.MergeSize)
			t.VisionPatches += patches
		}
		if media.Images > 0 {
			w, h := orDefault(media.ImageWidth, media.ImageHeight)
			rh, rw := SmartResize(h, w, f, ImageMinPixels, ImageMaxPixels)
			patches := (rh / v.PatchSize) * (rw / v.PatchSize)
			t.Image = media.Images * patches / (v.MergeSize * v.MergeSize)
			t.VisionPatches += media.Images * patches
		}
	}
	if a := m.Audio; a != nil {
		seconds := media.AudioSeconds
		t.Audio = int(math.Ceil(media.AudioSeconds * a.TokensPerSecond))
		if media.VideoAudio && media.VideoSeconds > 0 {
			t.VideoAudio = int(math.Ceil(media.VideoSeconds * a.TokensPerSecond))
			seconds += media.VideoSeconds
		}
		t.AudioFrames = int(math.Ceil(seconds * a.FramesPerSecond))
	}
	return t
}

func orDefault(w, h int) (int, int) {
	if w <= 0 || h <= 0 {
		return 1280, 720
	}
	return w, h
}

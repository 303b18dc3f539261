package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestAudioFormats checks the audio of both formats: OpenAI's pcm16 is raw
// 24 kHz mono 16-bit little-endian samples, and WAV answers use that rate
// too, so 100 ms per token is 2400 samples.
func TestAudioFormats(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, tc := range []struct {
		format string
		header int
	}{
		{"pcm16", 0},
		{"wav", 44},
	} {
		t.Run(tc.format, func(t *testing.T) {
			body := `{"messages":[{"role":"user","content":"Say hello."}],"modalities":["text","audio"],"audio":{"voice":"alloy","format":"` + tc.format + `"}}`
			var r struct {
				Choices []struct {
					Message struct{ Audio struct{ Data string } }
				}
				Usage usage
			}
			if err := json.Unmarshal(bodyOf(t, srv, body), &r); err != nil {
				t.Fatal(err)
			}
			raw, err := base64.StdEncoding.DecodeString(r.Choices[0].Message.Audio.Data)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.header + r.Usage.CompletionTokens*2400*2; len(raw) != want {
				t.Errorf("%d bytes for %d tokens, want %d (24 kHz, 16-bit, 100 ms a token)", len(raw), r.Usage.CompletionTokens, want)
			}
			if tc.format == "wav" {
				parseWAV(t, raw)
			}
			// The first samples fade in from silence, little-endian.
			if pcm := raw[tc.header:]; pcm[0] != 0 || pcm[1] != 0 {
				t.Errorf("first sample %x", pcm[:2])
			}

			var streamed []byte
			events := sseEvents(t, bodyOf(t, srv, strings.Replace(body, "{", `{"stream":true,`, 1)))
			for _, ev := range events[:len(events)-1] {
				var ch struct {
					Choices []struct {
						Delta struct{ Audio *struct{ Data string } }
					}
				}
				if err := json.Unmarshal([]byte(ev), &ch); err != nil {
					t.Fatal(err)
				}
				if len(ch.Choices) == 0 || ch.Choices[0].Delta.Audio == nil {
					continue
				}
				piece, err := base64.StdEncoding.DecodeString(ch.Choices[0].Delta.Audio.Data)
				if err != nil {
					t.Fatal(err)
				}
				streamed = append(streamed, piece...)
			}
			if !bytes.Equal(streamed, raw) {
				t.Errorf("streamed audio (%d bytes) differs from whole (%d bytes)", len(streamed), len(raw))
			}
		})
	}
}

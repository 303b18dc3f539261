package sim

import (
	"encoding/base64"
	"encoding/binary"
	"math"
)

// Audio answers are a generated tone, not speech: 100 ms per text token,
// 24 kHz mono 16-bit little-endian PCM (what OpenAI's pcm16 is, and the
// rate of its WAV answers too), each token a short note whose pitch comes
// from the token's text, with a 5 ms fade at both ends so notes do not click.
const (
	audioSampleRate      = 24000
	audioSamplesPerToken = audioSampleRate / 10
	audioFade            = audioSampleRate / 200
	audioExpiry          = 3600 // seconds, as OpenAI keeps audio answers
)

// wavHeader is the 44-byte RIFF/WAVE header for n 16-bit mono samples.
func wavHeader(n int) []byte {
	data := uint32(n * 2)
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+data)
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	binary.LittleEndian.PutUint32(h[16:], 16) // PCM fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)  // mono
	binary.LittleEndian.PutUint32(h[24:], audioSampleRate)
	binary.LittleEndian.PutUint32(h[28:], audioSampleRate*2) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)                 // block align
	binary.LittleEndian.PutUint16(h[34:], 16)                // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
	return h
}

// appendTone appends one token's note as little-endian 16-bit samples.
func appendTone(b []byte, token string) []byte {
	h := newSeedHash()
	h.str(token)
	freq := 220 + float64(h.h%440) // 220..659 Hz
	for i := range audioSamplesPerToken {
		amp := 0.25
		if i < audioFade {
			amp *= float64(i) / audioFade
		} else if j := audioSamplesPerToken - 1 - i; j < audioFade {
			amp *= float64(j) / audioFade
		}
		v := int16(amp * math.MaxInt16 * math.Sin(2*math.Pi*freq*float64(i)/audioSampleRate))
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// audioPiece is the audio of token k of an answer of n tokens, base64
// encoded; for WAV the first piece starts with the header, so the decoded
// pieces concatenate to one valid file.
func audioPiece(format string, token string, k, n int) []byte {
	raw := make([]byte, 0, 44+audioSamplesPerToken*2)
	if k == 0 && format == "wav" {
		raw = append(raw, wavHeader(n*audioSamplesPerToken)...)
	}
	raw = appendTone(raw, token)
	return base64.StdEncoding.AppendEncode(nil, raw)
}

// audioWhole is the full audio of an answer, base64 encoded.
func audioWhole(format string, tokens []string) string {
	raw := make([]byte, 0, 44+len(tokens)*audioSamplesPerToken*2)
	if format == "wav" {
		raw = append(raw, wavHeader(len(tokens)*audioSamplesPerToken)...)
	}
	for _, t := range tokens {
		raw = appendTone(raw, t)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

package router

import (
	"net/http"

	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/request"
)

// Latency is how soon a client needs its answer: the X-Omnigate-Latency
// header (realtime, standard, batch); a batch priority is batch too.
type Latency uint8

// The latency needs.
const (
	Standard Latency = iota
	Realtime
	Batch
)

// HeaderLatency is the client's latency hint.
const HeaderLatency = "X-Omnigate-Latency"

// ParseLatency reads a latency word; ok is false for an unknown one.
func ParseLatency(s string) (Latency, bool) {
	switch s {
	case "", "standard":
		return Standard, true
	case "realtime":
		return Realtime, true
	case "batch":
		return Batch, true
	}
	return Standard, false
}

// String returns the latency word.
func (l Latency) String() string {
	switch l {
	case Realtime:
		return "realtime"
	case Batch:
		return "batch"
	}
	return "standard"
}

// Features are what automatic routing reads of a request: cheap to
// compute from the parsed view and the bytes of its last user message,
// and the same in the router, in training and in evaluation.
type Features struct {
	PromptTokens int // estimated: characters / 4
	Turns        int
	Images       int
	Audios       int
	Videos       int
	Tools        int
	JSONOut      bool
	AudioOut     bool
	MaxTokens    int // 0 when not set
	// Marker counts in the last user message: code (fences, keywords,
	// braces and semicolons at line ends), maths (operators between
	// digits, maths words) and multi-step reasoning (step by step, why,
	// compare, prove…).
	Code, Math, Reasoning int
	// NonASCII is the share of the last user message's letters outside
	// ASCII (a proxy for language: the small tier is weaker off English).
	NonASCII float32
	Latency  Latency
}

// maxScan bounds the bytes of the last user message markers are counted
// in: a long message has shown what it is by then.
const maxScan = 8 << 10

// Extract computes r's features; body is the request's bytes (r's spans
// index it) and h its headers (nil: none).
func Extract(r *request.Request, body []byte, h http.Header) Features {
	f := Features{
		PromptTokens: (r.PromptChars + 3) / 4, Turns: r.Turns, Tools: r.Tools, JSONOut: r.JSONOut,
		Images: r.Media.Image, Audios: r.Media.Audio, Videos: r.Media.Video, MaxTokens: r.MaxTokens,
		AudioOut: r.AudioRequested || r.Modalities.Has(catalog.Audio),
	}
	if h != nil {
		if v := h[HeaderLatency]; len(v) > 0 {
			f.Latency, _ = ParseLatency(v[0])
		}
		if v := h["X-Omnigate-Priority"]; len(v) > 0 && v[0] == "batch" && f.Latency == Standard {
			f.Latency = Batch
		}
	}
	if sp := r.LastUserSpan; sp[1] > sp[0] && sp[1] <= len(body) {
		f.markers(body[sp[0]:sp[1]])
	}
	return f
}

// Words that mark a kind of request, lowercase.
var (
	codeWords = [][]byte{[]byte("```"), []byte("def "), []byte("func "), []byte("function"), []byte("class "), []byte("#include"),
		[]byte("import "), []byte("return "), []byte("select "), []byte("=>"), []byte("();"), []byte("code"), []byte("bug"),
		[]byte("compile"), []byte("regex"), []byte("python"), []byte("javascript"), []byte("golang"), []byte("sql")}
	mathWords = [][]byte{[]byte("solve"), []byte("prove"), []byte("integral"), []byte("derivative"), []byte("equation"),
		[]byte("theorem"), []byte("probability"), []byte("matrix"), []byte("calculate"), []byte("compute")}
	reasonWords = [][]byte{[]byte("step by step"), []byte("explain why"), []byte("why "), []byte("compare"), []byte("analy"),
		[]byte("reason"), []byte("plan "), []byte("evaluate"), []byte("trade-off"), []byte("pros and cons"), []byte("design"),
		[]byte("critique"), []byte("justify")}
)

// markers counts the markers of msg (its JSON bytes).
func (f *Features) markers(msg []byte) {
	msg = msg[:min(len(msg), maxScan)]
	n := len(msg)
	letters, other := 0, 0
	for i := 0; i < n; i++ {
		c := msg[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			letters++
		case c >= 'a' && c <= 'z':
			letters++
		case c >= 0xC0: // a UTF-8 lead byte: one letter outside ASCII
			other++
		case (c == '+' || c == '*' || c == '/' || c == '^' || c == '=') && i > 0 && i+1 < n && digitNear(msg, i):
			f.Math++
		case c == ';' || c == '{':
			if i+2 < n && msg[i+1] == '\\' && msg[i+2] == 'n' { // at a line's end
				f.Code++
			}
		}
		f.countWords(msg[i:], c)
	}
	if letters+other > 0 {
		f.NonASCII = float32(other) / float32(letters+other)
	}
}

// digitNear reports whether a digit is next to b[i], skipping a space.
func digitNear(b []byte, i int) bool {
	isDigit := func(j int) bool { return j >= 0 && j < len(b) && b[j] >= '0' && b[j] <= '9' }
	return (isDigit(i-1) || (b[i-1] == ' ' && isDigit(i-2))) && (isDigit(i+1) || (b[i+1] == ' ' && isDigit(i+2)))
}

// marker is a word and the count it adds to.
type marker struct {
	word []byte
	kind uint8 // 0 code, 1 maths, 2 reasoning
}

// byFirst lists the marker words by their first byte: one pass over a
// message tries at each byte only the words that start with it.
var byFirst = func() (t [256][]marker) {
	for kind, words := range [][][]byte{codeWords, mathWords, reasonWords} {
		for _, w := range words {
			t[w[0]] = append(t[w[0]], marker{w, uint8(kind)})
		}
	}
	return t
}()

// countWords counts the marker words that start text, whose first byte
// lowercased is c (text is compared as lowercase ASCII).
func (f *Features) countWords(text []byte, c byte) {
	for _, m := range byFirst[c] {
		if hasPrefixFold(text, m.word) {
			switch m.kind {
			case 0:
				f.Code++
			case 1:
				f.Math++
			default:
				f.Reasoning++
			}
		}
	}
}

// hasPrefixFold reports whether b starts with the lowercase word w, ASCII
// letters of b compared lowercased.
func hasPrefixFold(b, w []byte) bool {
	if len(b) < len(w) {
		return false
	}
	for i, x := range w {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != x {
			return false
		}
	}
	return true
}

// featureNames are the features by index, as rules name them
// (config.RuleFeatures) and the scorer orders them.
var featureNames = [...]string{"prompt_tokens", "turns", "images", "audios", "videos", "tools", "json", "audio_out",
	"max_tokens", "code", "math", "reasoning", "non_ascii", "latency"}

// featureIndex is the index of the feature named name, or -1.
func featureIndex(name string) int {
	for i, n := range featureNames {
		if n == name {
			return i
		}
	}
	return -1
}

// value returns feature i as a number, and latency as its word too.
func (f *Features) value(i int) (float64, string) {
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	switch featureNames[i] {
	case "prompt_tokens":
		return float64(f.PromptTokens), ""
	case "turns":
		return float64(f.Turns), ""
	case "images":
		return float64(f.Images), ""
	case "audios":
		return float64(f.Audios), ""
	case "videos":
		return float64(f.Videos), ""
	case "tools":
		return float64(f.Tools), ""
	case "json":
		return b(f.JSONOut), ""
	case "audio_out":
		return b(f.AudioOut), ""
	case "max_tokens":
		return float64(f.MaxTokens), ""
	case "code":
		return float64(f.Code), ""
	case "math":
		return float64(f.Math), ""
	case "reasoning":
		return float64(f.Reasoning), ""
	case "non_ascii":
		return float64(f.NonASCII), ""
	}
	return float64(f.Latency), f.Latency.String()
}

package dispatch

import (
	"bytes"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Tap sees an answer's bytes as the front end relays them, without
// holding up or changing the relay: token usage today; a cache tee and a
// stream's continuation record plug in the same way. Write gets each piece
// as it goes to the client; the core reads the tap when the call is Done.
type Tap interface {
	Write(p []byte)
}

// Usage is the token usage an answer reported.
type Usage struct {
	PromptTokens, CompletionTokens int64
}

// usageTap finds the "usage" object of a JSON answer or of a stream's
// final chunk (stream_options.include_usage). It copies only from the
// "usage" key on, into a small fixed buffer, so pieces that split the
// object still parse and a long answer costs one byte search per piece.
type usageTap struct {
	buf  [256]byte
	n    int  // bytes in buf
	open bool // inside a usage object not yet complete
	last Usage
	seen bool
	// tail is the end of the last piece, for a key split across pieces.
	tail  [8]byte
	ntail int

	// How a stream ended: its last bytes, and whether an error event went
	// by (an engine failing after its 200, passed on as it came).
	end      [16]byte
	nend     int
	errEvent bool
	// malformed: an event's data was neither a JSON value nor [DONE].
	malformed bool
	started   bool // a piece was seen
}

var usageKey = []byte(`"usage":`)

// Write scans one relayed piece.
func (t *usageTap) Write(p []byte) {
	t.keepEnd(p)
	if !t.errEvent && bytes.Contains(p, errorKey) {
		t.errEvent = true
	}
	if !t.malformed {
		t.checkData(p)
	}
	if !t.open && t.ntail > 0 {
		// The key may have started at the end of the last piece.
		var joint [2 * len(t.tail)]byte
		n := copy(joint[:], t.tail[:t.ntail])
		n += copy(joint[n:], p[:min(len(p), len(usageKey)-1)])
		if i := bytes.Index(joint[:n], usageKey); i >= 0 {
			p = p[i+len(usageKey)-t.ntail:]
			t.open, t.n = true, 0
		}
	}
	t.keepTail(p)
	for len(p) > 0 {
		if !t.open {
			i := bytes.Index(p, usageKey)
			if i < 0 {
				return
			}
			p = p[i+len(usageKey):]
			t.open, t.n = true, 0
		}
		k := copy(t.buf[t.n:], p)
		t.n += k
		end := objectEnd(t.buf[:t.n])
		switch {
		case end < 0:
			t.open = false // "usage": null, or not an object
		case end > 0:
			t.parse(t.buf[:end])
			t.open = false
			used := end - (t.n - k) // bytes of p that completed the object
			p = p[max(used, 0):]
		case t.n == len(t.buf):
			t.open = false // not a usage object we understand; look again later
			p = p[k:]
		default:
			return // the object continues in the next piece
		}
	}
}

var (
	errorKey = []byte(`{"error":`)
	doneEnd  = []byte("data: [DONE]")
)

var dataLine = []byte("\ndata:")

// checkData looks at each event data line that starts in p: what follows
// "data:" must be a JSON object or array, or [DONE]. A line split across
// pieces goes unchecked; a JSON answer has no such line (a newline in its
// strings is escaped).
func (t *usageTap) checkData(p []byte) {
	if !t.started {
		t.started = true
		if bytes.HasPrefix(p, dataLine[1:]) && !dataOK(p[len(dataLine)-1:]) {
			t.malformed = true
			return
		}
	}
	for {
		i := bytes.Index(p, dataLine)
		if i < 0 {
			return
		}
		p = p[i+len(dataLine):]
		if !dataOK(p) {
			t.malformed = true
			return
		}
	}
}

// dataOK reports whether an event's data (after "data:") starts as a
// chunk or [DONE] would; so far as p goes, it does.
func dataOK(p []byte) bool {
	if len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	return len(p) == 0 || p[0] == '{' || p[0] == '['
}

// keepEnd remembers the last bytes of the answer.
func (t *usageTap) keepEnd(p []byte) {
	if len(p) >= len(t.end) {
		t.nend = copy(t.end[:], p[len(p)-len(t.end):])
		return
	}
	keep := min(t.nend, len(t.end)-len(p))
	copy(t.end[:], t.end[t.nend-keep:t.nend])
	t.nend = keep + copy(t.end[keep:], p)
}

// done reports whether the bytes so far end a stream as it must end:
// with [DONE].
func (t *usageTap) done() bool {
	return bytes.HasSuffix(bytes.TrimRight(t.end[:t.nend], " \r\n"), doneEnd)
}

// keepTail remembers the last bytes seen, which may begin the key.
func (t *usageTap) keepTail(p []byte) {
	if len(p) >= len(usageKey)-1 {
		t.ntail = copy(t.tail[:], p[len(p)-(len(usageKey)-1):])
		return
	}
	// A short piece: keep what fits of the old tail and all of p.
	keep := min(t.ntail, len(usageKey)-1-len(p))
	copy(t.tail[:], t.tail[t.ntail-keep:t.ntail])
	t.ntail = keep + copy(t.tail[keep:], p)
}

// objectEnd returns the length of the JSON object (after leading blanks)
// at the start of b, or 0 when it is not complete yet or not an object.
func objectEnd(b []byte) int {
	depth, inStr, esc := 0, false, false
	for i, c := range b {
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i + 1
			}
		case depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			return -1 // null or another value: no usage here
		}
	}
	return 0
}

func (t *usageTap) parse(obj []byte) {
	var u Usage
	err := jsonscan.ObjectEach(obj, func(k, v []byte, _ int) error {
		switch {
		case jsonscan.Equal(k, "prompt_tokens"):
			u.PromptTokens, _ = jsonscan.ParseInt(v)
		case jsonscan.Equal(k, "completion_tokens"):
			u.CompletionTokens, _ = jsonscan.ParseInt(v)
		}
		return nil
	})
	if err == nil {
		t.last, t.seen = u, true
	}
}

// usage returns the last usage seen.
func (t *usageTap) usage() (Usage, bool) { return t.last, t.seen }

var _ Tap = (*usageTap)(nil)

package backend

import (
	"bytes"
	"io"
	"sync"
)

// modelRewriter wraps an upstream response body and replaces the value of the
// top-level "model" member with the public name: once in a JSON document, or
// once per "data:" line of an SSE stream. Every other byte is copied as is.
// It is a byte-at-a-time state machine, so a read may end anywhere, and it
// jumps over string contents and the rest of a line with bytes.Index*.
// JSON spread over several "data:" lines of one event is not rewritten (no
// OpenAI-compatible server sends that).
type modelRewriter struct {
	src  io.ReadCloser
	repl []byte // the public name as a JSON string
	sse  bool

	buf  []byte
	r, w int
	err  error
	pend []byte // rest of the replacement still to emit

	mode   uint8
	prefix int // bytes of "data:" matched at the start of a line

	// JSON scanning state for the current document.
	depth    int
	inStr    bool
	esc      bool
	skipping bool // inside the old model value, which is dropped
	phase    uint8
	keyN     int
	keyOK    bool
	isModel  bool
}

const (
	modeLine     uint8 = iota // SSE: at the start of a line, matching "data:"
	modeJSON                  // scanning a document for its top-level "model"
	modeSkipLine              // SSE: copying up to the next line end
	modePass                  // JSON: done, copying the rest
)

// Phases of the member being read at depth 1.
const (
	phKey   uint8 = iota // expecting a key
	phInKey              // reading a key
	phColon              // expecting ':'
	phValue              // expecting a value
	phOther              // inside or after a value
)

const dataPrefix = "data:"

// newModelRewriter wraps src. When src has WriteTo (the h1 fast path), so
// does the result: see modelRewriterTo.
func newModelRewriter(src io.ReadCloser, public string, sse bool) io.ReadCloser {
	m := &modelRewriter{src: src, repl: quoteJSON(public), sse: sse}
	if sse {
		m.mode = modeLine
	} else {
		m.mode = modeJSON
	}
	if wt, ok := src.(io.WriterTo); ok {
		return &modelRewriterTo{modelRewriter: m, wt: wt}
	}
	return m
}

// modelRewriterTo is a modelRewriter over a body with WriteTo. Its WriteTo
// lets the body write each piece straight from its connection buffer to a
// writer that rewrites it on the way, into a pooled scratch buffer held only
// during that call: a stream waiting for the upstream holds no buffer here,
// as a stream that needs no rewrite holds none in the relay.
type modelRewriterTo struct {
	*modelRewriter
	wt io.WriterTo
}

// WriteTo writes the rest of the rewritten body to w. A Flush method of w
// is called whenever the body is about to wait for the upstream (see
// h1's body.WriteTo); a failure of w comes back as the body reports it.
func (m *modelRewriterTo) WriteTo(w io.Writer) (int64, error) {
	rw := &rewriteWriter{m: m.modelRewriter, w: w}
	rw.f, _ = w.(interface{ Flush() })
	if m.r < m.w || len(m.pend) > 0 { // what earlier Reads left behind
		if _, err := rw.Write(m.buf[m.r:m.w]); err != nil {
			return rw.n, err
		}
		m.release()
	}
	if m.err != nil {
		if m.err == io.EOF {
			return rw.n, nil
		}
		return rw.n, m.err
	}
	_, err := m.wt.WriteTo(rw)
	return rw.n, err
}

// rewriteWriter rewrites what is written to it and passes it on to w.
type rewriteWriter struct {
	m *modelRewriter
	w io.Writer
	f interface{ Flush() } // w's, if it has one
	n int64                // bytes written to w
}

// Write rewrites p into a pooled buffer and writes it to w, in one write
// unless the rewritten bytes outgrow the buffer.
func (rw *rewriteWriter) Write(p []byte) (int, error) {
	bp := rewriteBufs.Get().(*[]byte)
	defer rewriteBufs.Put(bp)
	out := *bp
	m := rw.m
	i := 0
	for {
		j := 0
		for j < len(out) && (len(m.pend) > 0 || i < len(p)) {
			if len(m.pend) > 0 {
				c := copy(out[j:], m.pend)
				m.pend = m.pend[c:]
				j += c
				continue
			}
			ni, no := m.process(p[i:], out[j:])
			i, j = i+ni, j+no
		}
		if j > 0 {
			n, err := rw.w.Write(out[:j])
			rw.n += int64(n)
			if err == nil && n < j {
				err = io.ErrShortWrite
			}
			if err != nil {
				return i, err
			}
		}
		if i == len(p) && len(m.pend) == 0 {
			return len(p), nil
		}
	}
}

// Flush flushes w, if it can.
func (rw *rewriteWriter) Flush() {
	if rw.f != nil {
		rw.f.Flush()
	}
}

// Read implements io.Reader.
func (m *modelRewriter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(m.pend) > 0 {
			c := copy(p[n:], m.pend)
			m.pend = m.pend[c:]
			n += c
			continue
		}
		if m.r == m.w {
			if m.err != nil || m.mode == modePass {
				m.release()
			}
			if n > 0 {
				break // do not block while holding output
			}
			if m.err != nil {
				return 0, m.err
			}
			if m.mode == modePass {
				return m.src.Read(p)
			}
			if m.buf == nil {
				m.buf = *(rewriteBufs.Get().(*[]byte))
			}
			nr, err := m.src.Read(m.buf)
			m.r, m.w, m.err = 0, nr, err
			continue
		}
		ni, no := m.process(m.buf[m.r:m.w], p[n:])
		m.r += ni
		n += no
	}
	return n, nil
}

// rewriteBufs recycles the input buffers of finished rewriters.
var rewriteBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// release returns the drained buffer to the pool. It runs inside Read only,
// never in Close, which may race with a Read in progress.
func (m *modelRewriter) release() {
	if m.buf != nil {
		b := m.buf
		m.buf, m.r, m.w = nil, 0, 0
		rewriteBufs.Put(&b)
	}
}

// Close closes the upstream body.
func (m *modelRewriter) Close() error { return m.src.Close() }

func (m *modelRewriter) resetDoc() {
	m.depth, m.inStr, m.esc, m.skipping = 0, false, false, false
	m.phase, m.keyN, m.keyOK, m.isModel = phKey, 0, false, false
}

// docDone stops scanning the current document.
func (m *modelRewriter) docDone() {
	if m.sse {
		m.mode = modeSkipLine
	} else {
		m.mode = modePass
	}
}

// process copies in to out, transforming, until one of them is used up or a
// replacement begins (left in m.pend). It returns the bytes consumed from in
// and written to out.
func (m *modelRewriter) process(in, out []byte) (i, j int) {
	for i < len(in) && j < len(out) {
		switch m.mode {
		case modePass:
			c := copy(out[j:], in[i:])
			return i + c, j + c
		case modeSkipLine:
			k := bytes.IndexByte(in[i:], '\n')
			end := len(in)
			if k >= 0 {
				end = i + k + 1
			}
			c := copy(out[j:], in[i:end])
			i, j = i+c, j+c
			if k >= 0 && i == end {
				m.mode, m.prefix = modeLine, 0
			}
			continue
		case modeLine:
			c := in[i]
			switch {
			case c == dataPrefix[m.prefix]:
				m.prefix++
				if m.prefix == len(dataPrefix) {
					m.mode = modeJSON
					m.resetDoc()
				}
			case c == '\n':
				m.prefix = 0
			default:
				m.mode = modeSkipLine
				continue
			}
			out[j] = c
			i, j = i+1, j+1
			continue
		}

		// modeJSON
		c := in[i]
		if m.sse && c == '\n' { // a raw LF cannot be inside a JSON value
			m.mode, m.prefix = modeLine, 0
			out[j] = c
			i, j = i+1, j+1
			continue
		}
		if m.skipping {
			if m.esc {
				m.esc = false
				i++
				continue
			}
			k := bytes.IndexAny(in[i:], "\"\\\n")
			if k < 0 {
				i = len(in)
				continue
			}
			i += k
			switch in[i] {
			case '\\':
				m.esc = true
				i++
			case '"':
				m.skipping = false
				m.docDone()
				i++
			default: // a raw LF in the old value: SSE resyncs on it above
				if !m.sse {
					i++
				}
			}
			continue
		}
		if m.inStr {
			if !m.esc && m.phase != phInKey {
				// Fast path through string contents.
				k := bytes.IndexAny(in[i:], "\"\\\n")
				if k < 0 {
					k = len(in) - i
				}
				if k > 0 {
					c := copy(out[j:], in[i:i+k])
					i, j = i+c, j+c
					continue
				}
			}
			switch {
			case m.esc:
				m.esc = false
			case c == '\\':
				m.esc = true
				m.keyOK = false // an escaped key is never matched
			case c == '"':
				m.inStr = false
				if m.phase == phInKey {
					m.isModel = m.keyOK && m.keyN == len("model")
					m.phase = phColon
				}
			case m.phase == phInKey:
				if m.keyN < len("model") && c == "model"[m.keyN] {
					m.keyN++
				} else {
					m.keyOK = false
				}
			}
			out[j] = c
			i, j = i+1, j+1
			continue
		}
		switch c {
		case '"':
			switch {
			case m.depth == 1 && m.phase == phKey:
				m.phase, m.keyN, m.keyOK = phInKey, 0, true
			case m.depth == 1 && m.phase == phValue && m.isModel:
				m.skipping = true
				m.pend = m.repl
				return i + 1, j
			case m.depth == 1 && m.phase == phValue:
				m.phase = phOther
			}
			m.inStr = true
		case '{', '[':
			if m.depth == 0 && c == '[' {
				m.docDone()
			}
			if m.depth == 1 && m.phase == phValue {
				m.phase = phOther
			}
			m.depth++
		case '}', ']':
			m.depth--
			if m.depth <= 0 {
				m.docDone()
			}
		case ':':
			if m.depth == 1 && m.phase == phColon {
				m.phase = phValue
			}
		case ',':
			if m.depth == 1 {
				m.phase, m.isModel = phKey, false
			}
		case ' ', '\t', '\r', '\n':
		default:
			if m.depth == 0 {
				m.docDone() // not an object: "[DONE]" or junk
			} else if m.depth == 1 && m.phase == phValue {
				m.phase = phOther // a non-string model value is left alone
			}
		}
		out[j] = c
		i, j = i+1, j+1
	}
	return i, j
}

var _ io.ReadCloser = (*modelRewriter)(nil)

package backend

import (
	"bytes"
	"io"
	"sync"
)

// modelRewriter wraps an upstream response body and replaces the value of
// every top-level "model" member with the public name, in the JSON document
// or in each event of an SSE stream; every other byte is copied as is.
// Keys are compared as a JSON decoder reads them (escapes decoded), in any
// case (Go's encoding/json matches struct fields so), and every occurrence
// of the key is rewritten (decoders keep the last), so the forwarded bytes
// never show the upstream's name there.
//
// An SSE event's document is the data of its "data:" lines, which may be
// spread over several of them (the spec joins them with LF, JSON white
// space); a blank line ends the event. Lines end in LF, CRLF or a bare CR,
// and a byte order mark may start the stream, as the spec has it. A data
// line that starts after a whole document starts another one, for the
// readers that take each data line for an event.
//
// It is a byte-at-a-time state machine, so a read may end anywhere, and it
// jumps over string contents, nested values and the rest of a line with
// byte-set scans and bytes.IndexByte.
type modelRewriter struct {
	src  io.ReadCloser
	repl []byte // the public name as a JSON string
	sse  bool

	buf  []byte
	r, w int
	err  error
	pend []byte // rest of the replacement still to emit

	// SSE: where in a line the stream is.
	line    uint8
	prefix  int  // bytes of "data:" matched at the start of a line
	afterCR bool // the last byte was a CR ending a line: a LF now belongs to it
	bom     int  // bytes of a byte order mark matched at the start; -1: past it

	// The current document: the body, or an SSE event's data.
	done     bool // nothing more to rewrite in it (ended, not an object, broken)
	depth    int
	inStr    bool
	esc      bool
	skipping bool // inside an old model value, which is dropped
	phase    uint8
	keyN     int  // bytes of "model" matched by the key so far
	keyOK    bool // the key may still be "model"
	keyHex   int  // hex digits of a \u escape in the key still to read
	keyRune  rune // the \u escape read so far
	isModel  bool
}

// Where an SSE line is.
const (
	lineStart uint8 = iota // at its start, matching "data:"
	lineData               // in the value of a data line
	lineOther              // in any other line
)

// Phases of the member being read at depth 1.
const (
	phKey   uint8 = iota // expecting a key
	phInKey              // reading a key
	phColon              // expecting ':'
	phValue              // expecting a value
	phOther              // inside or after a value
)

const (
	dataPrefix = "data:"
	bom        = "\xef\xbb\xbf"
)

// newModelRewriter wraps src. When src has WriteTo (the h1 fast path), so
// does the result: see modelRewriterTo.
func newModelRewriter(src io.ReadCloser, public string, sse bool) io.ReadCloser {
	m := &modelRewriter{src: src, repl: quoteJSON(public), sse: sse}
	m.resetDoc()
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
			if m.err != nil || m.passing() {
				m.release()
			}
			if n > 0 {
				break // do not block while holding output
			}
			if m.err != nil {
				return 0, m.err
			}
			if m.passing() {
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
	m.done, m.depth, m.inStr, m.esc, m.skipping = false, 0, false, false, false
	m.phase, m.keyN, m.keyOK, m.keyHex, m.isModel = phKey, 0, false, 0, false
}

// passing reports that the rest of the body is copied as is.
func (m *modelRewriter) passing() bool { return !m.sse && m.done }

// endLine notes the end of an SSE line.
func (m *modelRewriter) endLine() {
	switch {
	case m.line == lineStart && m.prefix == 0: // a blank line ends the event
		m.resetDoc()
	case m.line == lineData || (m.line == lineStart && m.prefix == len("data")): // "data" alone: an empty data line
		// The data lines are joined with a LF: white space between JSON
		// tokens, the end of a document broken inside a string.
		if m.inStr || m.skipping {
			m.done = true
		}
	}
	m.line, m.prefix, m.bom = lineStart, 0, -1
}

// The bytes the fast paths stop at: in a string a quote or a backslash, in
// a nested value a quote or a bracket, after a member's value also a
// comma, and in a stream a line end anywhere.
var (
	stopsJSON  = newByteSet("\"\\")
	stopsSSE   = newByteSet("\"\\\r\n")
	nestedJSON = newByteSet("\"{}[]")
	nestedSSE  = newByteSet("\"{}[]\r\n")
	afterJSON  = newByteSet("\"{}[],")
	afterSSE   = newByteSet("\"{}[],\r\n")
)

// byteSet is a set of bytes to look for. Unlike bytes.IndexAny, which
// builds its set on every call, it costs nothing to start a search, and
// most runs here are a few bytes long.
type byteSet [256]bool

func newByteSet(chars string) *byteSet {
	var s byteSet
	for i := 0; i < len(chars); i++ {
		s[chars[i]] = true
	}
	return &s
}

// index returns the index of the first byte of b in s, or -1.
func (s *byteSet) index(b []byte) int {
	for i, c := range b {
		if s[c] {
			return i
		}
	}
	return -1
}

// lineEnd returns the index of the first CR or LF in b, or -1.
func lineEnd(b []byte) int {
	k := bytes.IndexByte(b, '\n')
	if k >= 0 {
		b = b[:k] // a CR only matters before it
	}
	if cr := bytes.IndexByte(b, '\r'); cr >= 0 {
		return cr
	}
	return k
}

// process copies in to out, transforming, until one of them is used up or a
// replacement begins (left in m.pend). It returns the bytes consumed from in
// and written to out.
func (m *modelRewriter) process(in, out []byte) (i, j int) {
	stops, nested, after := stopsJSON, nestedJSON, afterJSON
	if m.sse {
		stops, nested, after = stopsSSE, nestedSSE, afterSSE
	}
	for i < len(in) && j < len(out) {
		c := in[i]
		if m.sse && (m.afterCR || c == '\r' || c == '\n' || m.line != lineData || m.done) {
			ni, nj := m.sseLine(in[i:], out[j:])
			i, j = i+ni, j+nj
			continue
		}
		if m.done { // the rest of a JSON body
			n := copy(out[j:], in[i:])
			return i + n, j + n
		}

		// In the document.
		if m.skipping {
			if m.esc {
				m.esc = false
				i++
				continue
			}
			k := stops.index(in[i:])
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
				m.skipping, m.phase = false, phOther
				i++
			} // a line end: handled above, next round
			continue
		}
		if m.inStr {
			if m.phase == phInKey {
				if m.esc || m.keyHex > 0 || stops[c] {
					m.keyByte(c)
					out[j] = c
					i, j = i+1, j+1
					continue
				}
				// The key's plain bytes, at once.
				k := i
				for k < len(in) && k-i < len(out)-j && !stops[in[k]] {
					m.keyChar(rune(in[k]))
					k++
				}
				n := copy(out[j:], in[i:k])
				i, j = i+n, j+n
				continue
			}
			if m.esc {
				m.esc = false
				out[j] = c
				i, j = i+1, j+1
				continue
			}
			// Through the string's contents at once.
			k := stops.index(in[i:])
			if k < 0 {
				k = len(in) - i
			}
			if k > 0 {
				n := copy(out[j:], in[i:i+k])
				i, j = i+n, j+n
				continue
			}
			switch c {
			case '\\':
				m.esc = true
			case '"':
				m.inStr = false
			}
			out[j] = c
			i, j = i+1, j+1
			continue
		}
		if m.depth > 1 || m.phase == phOther {
			// Inside a nested value only strings and brackets matter, and
			// after a member's value only what ends it: a number, a
			// literal, white space go at once.
			set := nested
			if m.depth == 1 {
				set = after
			}
			k := set.index(in[i:])
			if k < 0 {
				k = len(in) - i
			}
			if k > 0 {
				n := copy(out[j:], in[i:i+k])
				i, j = i+n, j+n
				continue
			}
		}
		switch c {
		case '"':
			switch {
			case m.depth == 1 && m.phase == phKey:
				m.phase, m.keyN, m.keyOK, m.keyHex = phInKey, 0, true, 0
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
				m.done = true
			}
			if m.depth == 1 && m.phase == phValue {
				m.phase = phOther
			}
			m.depth++
		case '}', ']':
			m.depth--
			if m.depth <= 0 {
				m.done = true
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
				m.done = true // not an object: "[DONE]" or junk
			} else if m.depth == 1 && m.phase == phValue {
				m.phase = phOther // a non-string model value is left alone
			}
		}
		out[j] = c
		i, j = i+1, j+1
	}
	return i, j
}

// sseLine processes what in starts with outside a document: a line end,
// the start of a line, or a line (or its rest) with nothing to rewrite. It
// consumes at least one byte.
func (m *modelRewriter) sseLine(in, out []byte) (i, j int) {
	c := in[0]
	if m.afterCR {
		m.afterCR = false
		if c == '\n' { // the LF of a CRLF
			out[0] = c
			return 1, 1
		}
	}
	if c == '\r' || c == '\n' {
		m.endLine()
		m.afterCR = c == '\r'
		out[0] = c
		return 1, 1
	}
	if m.line == lineStart {
		if m.bom >= 0 && m.prefix == 0 {
			if c == bom[m.bom] {
				if m.bom++; m.bom == len(bom) {
					m.bom = -1
				}
				out[0] = c
				return 1, 1
			}
			broken := m.bom > 0 // the line is no field a client reads
			m.bom = -1
			if broken {
				m.line = lineOther
				return m.sseLine(in, out)
			}
		}
		if m.prefix < len(dataPrefix) && c == dataPrefix[m.prefix] {
			if m.prefix++; m.prefix == len(dataPrefix) {
				m.line = lineData
				if m.done {
					// A data line after a whole document: readers that take
					// each line for an event see a document of its own.
					m.resetDoc()
				}
			}
			out[0] = c
			return 1, 1
		}
		m.line = lineOther
	}
	// The rest of a line that is not data, or whose document is done.
	end := len(in)
	if k := lineEnd(in); k >= 0 {
		end = k
	}
	n := copy(out, in[:end])
	return n, n
}

// keyByte reads byte c of a key at depth 1, decoding escapes to compare
// the key with "model" as a JSON decoder would read it.
func (m *modelRewriter) keyByte(c byte) {
	switch {
	case m.keyHex > 0:
		v, ok := unhex(c)
		if !ok {
			m.keyHex, m.keyOK = 0, false
			return
		}
		m.keyRune = m.keyRune<<4 | v
		if m.keyHex--; m.keyHex == 0 {
			m.keyChar(m.keyRune)
		}
	case m.esc:
		m.esc = false
		switch c {
		case 'u':
			m.keyHex, m.keyRune = 4, 0
		case '"', '\\', '/':
			m.keyChar(rune(c))
		default: // \b \f \n \r \t, or invalid: no byte of "model"
			m.keyOK = false
		}
	case c == '\\':
		m.esc = true
	case c == '"':
		m.inStr = false
		m.isModel = m.keyOK && m.keyN == len("model")
		m.phase = phColon
	default:
		m.keyChar(rune(c))
	}
}

// keyChar matches the next character of a key against "model", in any
// case.
func (m *modelRewriter) keyChar(r rune) {
	if 'A' <= r && r <= 'Z' {
		r += 'a' - 'A'
	}
	if m.keyOK && m.keyN < len("model") && r == rune("model"[m.keyN]) {
		m.keyN++
	} else {
		m.keyOK = false
	}
}

func unhex(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}

var _ io.ReadCloser = (*modelRewriter)(nil)

package grpcserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// conn is one client connection: its reader (serve, the only goroutine
// that reads frames and the only one that changes the streams' receive
// state) and the writing its calls share.
type conn struct {
	srv *Server
	raw net.Conn // as accepted: what Close closes
	nc  net.Conn // what the frames go over: raw, or TLS over it
	fr  *http2.Framer

	// Writing: whoever holds wmu appends whole frames to out; one writer
	// at a time (flushing) writes what has gathered to the socket, outside
	// the lock, and again while more gathers, so calls writing at once
	// share a system call and none waits on the socket for another's.
	wmu      sync.Mutex
	out      []byte
	spare    []byte
	flushing bool
	flushed  sync.Cond // signalled, under wmu, as a writer stops flushing
	ready    bool      // the handshake is done: frames can be written
	werr     error     // the first write error: the connection is done
	henc     *hpack.Encoder
	hbuf     bytes.Buffer

	// Flow control of what the server sends, under fmu; fcond wakes
	// writers waiting for a window.
	fmu           sync.Mutex
	fcond         sync.Cond
	sendWindow    int64 // the connection's
	initialWindow int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame      int   // the peer's SETTINGS_MAX_FRAME_SIZE

	// Streams open, under smu.
	smu       sync.Mutex
	streams   map[uint32]*stream
	maxID     uint32 // the highest stream id seen
	goingAway bool   // GOAWAY sent: no new streams
	closed    bool

	// Receiving (the reader's alone): the connection's window left, and
	// bytes received and not yet given back with a WINDOW_UPDATE.
	recvWindow int64
	recvOwed   uint32
}

const preface = http2.ClientPreface

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, raw: nc, nc: nc, streams: map[uint32]*stream{}, sendWindow: defaultWindow, initialWindow: defaultWindow,
		maxFrame: 16384, recvWindow: int64(s.opt.ConnWindow)}
	c.fcond.L = &c.fmu
	c.flushed.L = &c.wmu
	return c
}

// serve reads the connection's frames until it ends, then cancels the
// calls still running on it.
func (c *conn) serve() {
	defer c.teardown()
	br, err := c.handshake()
	if err != nil {
		return
	}
	c.fr = http2.NewFramer(nil, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = c.srv.opt.MaxHeaderListSize
	c.fr.SetMaxReadFrameSize(16384) // HTTP/2's default: the server's SETTINGS raise no SETTINGS_MAX_FRAME_SIZE
	c.fr.SetReuseFrames()
	first := true
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.streamError(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.fatal(http2.ErrCode(ce))
			} else if errors.Is(err, http2.ErrFrameTooLarge) {
				c.fatal(http2.ErrCodeFrameSize)
			}
			return
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				c.fatal(http2.ErrCodeProtocol) // the preface is followed by SETTINGS
				return
			}
			first = false
		}
		if code := c.frame(f); code != http2.ErrCodeNo {
			c.fatal(code)
			return
		}
	}
}

// handshake runs TLS's handshake, reads the client's preface and sends
// the server's settings, within the handshake timeout.
func (c *conn) handshake() (*bufio.Reader, error) {
	opt := &c.srv.opt
	c.raw.SetDeadline(time.Now().Add(opt.HandshakeTimeout))
	nc := c.raw
	if opt.TLS != nil {
		tc := tls.Server(c.raw, opt.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			return nil, fmt.Errorf("ALPN protocol %q, not h2", p)
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 32<<10)
	var p [len(preface)]byte
	if _, err := io.ReadFull(br, p[:]); err != nil || string(p[:]) != preface {
		return nil, errors.New("no HTTP/2 preface")
	}
	c.raw.SetDeadline(time.Time{})
	c.wmu.Lock()
	c.nc = nc
	c.out, c.spare = make([]byte, 0, 32<<10), make([]byte, 0, 32<<10)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.ready = true
	c.wmu.Unlock()

	var settings []http2.Setting
	if opt.MaxConcurrentStreams > 0 {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: opt.MaxConcurrentStreams})
	}
	if opt.StreamWindow != defaultWindow {
		settings = append(settings, http2.Setting{ID: http2.SettingInitialWindowSize, Val: opt.StreamWindow})
	}
	settings = append(settings, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: opt.MaxHeaderListSize})
	c.write(func() {
		c.writeSettings(settings)
		if opt.ConnWindow > defaultWindow {
			c.writeWindowUpdate(0, opt.ConnWindow-defaultWindow)
		}
	}, true)
	return br, c.werrNow()
}

// frame handles one frame; an error code other than NO_ERROR ends the
// connection.
func (c *conn) frame(f http2.Frame) http2.ErrCode {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.onPing(f.Data)
		}
	case *http2.RSTStreamFrame:
		if st := c.stream(f.StreamID); st != nil {
			st.reset(errCanceledByClient)
		}
	case *http2.GoAwayFrame:
		// the client sends no more calls; those running finish
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol
	}
	return http2.ErrCodeNo
}

// onPing answers a PING.
func (c *conn) onPing(data [8]byte) { c.write(func() { c.writePing(data) }, true) }

func (c *conn) stream(id uint32) *stream {
	c.smu.Lock()
	st := c.streams[id]
	c.smu.Unlock()
	return st
}

// onHeaders starts a call, or ends a client's stream of messages (its
// trailers).
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) http2.ErrCode {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ErrCodeProtocol
	}
	c.smu.Lock()
	if st := c.streams[id]; st != nil {
		c.smu.Unlock()
		if !f.StreamEnded() {
			return http2.ErrCodeProtocol
		}
		st.endRecv()
		return http2.ErrCodeNo
	}
	if id <= c.maxID {
		c.smu.Unlock()
		return http2.ErrCodeStreamClosed
	}
	c.maxID = id
	if c.goingAway || c.closed || (c.srv.opt.MaxConcurrentStreams > 0 && len(c.streams) >= int(c.srv.opt.MaxConcurrentStreams)) {
		c.smu.Unlock()
		c.streamError(id, http2.ErrCodeRefusedStream)
		return http2.ErrCodeNo
	}
	c.smu.Unlock()

	if f.Truncated {
		c.refuse(id, 431, codes.ResourceExhausted, "grpc: the call's metadata is larger than the server's limit")
		return http2.ErrCodeNo
	}
	if f.PseudoValue("method") != "POST" {
		c.refuse(id, 405, codes.Internal, "grpc: the method of a call is POST")
		return http2.ErrCodeNo
	}
	path := f.PseudoValue("path")
	var (
		md      metadata.MD
		timeout time.Duration
		ctype   bool
	)
	for _, hf := range f.Fields {
		name := hf.Name
		if name == "" || name[0] == ':' {
			continue
		}
		switch name {
		case "content-type":
			ctype = isGRPCContentType(hf.Value)
			continue
		case "grpc-timeout":
			d, err := parseTimeout(hf.Value)
			if err != nil {
				c.refuse(id, 200, codes.Internal, "grpc: malformed grpc-timeout: "+err.Error())
				return http2.ErrCodeNo
			}
			timeout = d
			continue
		case "grpc-encoding":
			if hf.Value != "identity" {
				c.refuse(id, 200, codes.Unimplemented, fmt.Sprintf("grpc: Decompressor is not installed for grpc-encoding %q", hf.Value))
				return http2.ErrCodeNo
			}
			continue
		case "te", "user-agent", "grpc-accept-encoding", "grpc-message-type":
			continue
		}
		v := hf.Value
		if strings.HasSuffix(name, "-bin") {
			b, err := decodeBin(v)
			if err != nil {
				c.refuse(id, 200, codes.Internal, fmt.Sprintf("grpc: malformed binary metadata %q", name))
				return http2.ErrCodeNo
			}
			v = string(b)
		}
		if md == nil {
			md = make(metadata.MD, 4)
		}
		md[name] = append(md[name], v)
	}
	if !ctype {
		c.refuse(id, 415, codes.Internal, "grpc: the content-type of a call is application/grpc")
		return http2.ErrCodeNo
	}
	h := c.srv.handlers[path]
	if h == nil {
		c.refuse(id, 200, codes.Unimplemented, c.srv.unknownMethod(path))
		return http2.ErrCodeNo
	}
	st := newStream(c, id, h, md, timeout)
	c.smu.Lock()
	c.streams[id] = st
	c.smu.Unlock()
	if h.clientStreams {
		c.srv.dispatch(st)
	}
	if f.StreamEnded() {
		st.endRecv()
	}
	return http2.ErrCodeNo
}

// onData takes a call's bytes, within the windows the server gave.
func (c *conn) onData(f *http2.DataFrame) http2.ErrCode {
	n := f.Header().Length
	if int64(n) > c.recvWindow {
		return http2.ErrCodeFlowControl
	}
	c.recvWindow -= int64(n)
	c.recvOwed += n
	if c.recvOwed >= c.srv.opt.ConnWindow/4 {
		owed := c.recvOwed
		c.recvOwed, c.recvWindow = 0, c.recvWindow+int64(owed)
		c.write(func() { c.writeWindowUpdate(0, owed) }, true)
	}
	st := c.stream(f.StreamID)
	if st == nil {
		if f.StreamID > c.maxID || f.StreamID%2 == 0 {
			return http2.ErrCodeProtocol // a stream never opened
		}
		return http2.ErrCodeNo // a call already over
	}
	if st.recvClosed() {
		c.streamError(f.StreamID, http2.ErrCodeStreamClosed) // DATA after the client's END_STREAM
		return http2.ErrCodeNo
	}
	st.recvData(f.Data(), n, f.StreamEnded())
	return http2.ErrCodeNo
}

func (c *conn) onSettings(f *http2.SettingsFrame) http2.ErrCode {
	if f.IsAck() {
		return http2.ErrCodeNo
	}
	code := http2.ErrCodeNo
	tableSize := int64(-1)
	f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				code = http2.ErrCode(ce)
			} else {
				code = http2.ErrCodeProtocol
			}
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			c.fmu.Lock()
			delta := int64(s.Val) - c.initialWindow
			c.initialWindow = int64(s.Val)
			c.smu.Lock()
			for _, st := range c.streams {
				st.sendWindow += delta
			}
			c.smu.Unlock()
			c.fcond.Broadcast()
			c.fmu.Unlock()
		case http2.SettingMaxFrameSize:
			c.fmu.Lock()
			c.maxFrame = int(s.Val)
			c.fmu.Unlock()
		case http2.SettingHeaderTableSize:
			tableSize = int64(s.Val)
		}
		return nil
	})
	if code != http2.ErrCodeNo {
		return code
	}
	c.write(func() {
		if tableSize >= 0 {
			c.henc.SetMaxDynamicTableSizeLimit(uint32(min(tableSize, 4096)))
		}
		c.writeSettingsAck()
	}, true)
	return http2.ErrCodeNo
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) http2.ErrCode {
	inc := int64(f.Increment)
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if f.StreamID == 0 {
		if c.sendWindow+inc > 1<<31-1 {
			return http2.ErrCodeFlowControl
		}
		c.sendWindow += inc
	} else {
		c.smu.Lock()
		st := c.streams[f.StreamID]
		c.smu.Unlock()
		if st == nil {
			return http2.ErrCodeNo
		}
		if st.sendWindow+inc > 1<<31-1 {
			c.fmu.Unlock()
			c.streamError(f.StreamID, http2.ErrCodeFlowControl)
			st.reset(errFlowControl)
			c.fmu.Lock()
			return http2.ErrCodeNo
		}
		st.sendWindow += inc
	}
	c.fcond.Broadcast()
	return http2.ErrCodeNo
}

// streamError ends a stream with RST_STREAM.
func (c *conn) streamError(id uint32, code http2.ErrCode) {
	if st := c.stream(id); st != nil {
		st.reset(errCanceledByClient)
	}
	c.write(func() { c.writeRSTStream(id, code) }, true)
}

// refuse answers a call the server will not run with its status alone.
func (c *conn) refuse(id uint32, httpStatus int, code codes.Code, msg string) {
	c.write(func() {
		c.hbuf.Reset()
		c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(httpStatus)})
		c.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: codeText(code)})
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: encodeGRPCMessage(msg)})
		c.writeHeaderBlock(id, true)
	}, true)
}

// fatal ends the connection with GOAWAY: code.
func (c *conn) fatal(code http2.ErrCode) {
	c.smu.Lock()
	last := c.maxID
	c.smu.Unlock()
	c.write(func() { c.writeGoAway(last, code) }, true)
}

// goAway tells the client to send its next calls elsewhere; the
// connection closes once the calls running have ended.
func (c *conn) goAway() {
	c.smu.Lock()
	if c.goingAway || c.closed {
		c.smu.Unlock()
		return
	}
	c.goingAway = true
	last, idle := c.maxID, len(c.streams) == 0
	c.smu.Unlock()
	c.write(func() { c.writeGoAway(last, http2.ErrCodeNo) }, true)
	if idle {
		c.sync()
		c.raw.Close()
	}
}

// teardown closes the connection and cancels its calls.
func (c *conn) teardown() {
	c.raw.Close()
	c.smu.Lock()
	c.closed = true
	open := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		open = append(open, st)
	}
	c.smu.Unlock()
	for _, st := range open {
		st.reset(errConnClosed)
	}
	c.fmu.Lock()
	c.fcond.Broadcast()
	c.fmu.Unlock()
	c.srv.connDone(c)
}

// streamDone forgets a call that has ended; a connection going away
// closes with its last.
func (c *conn) streamDone(st *stream) {
	if h := c.srv.opt.Handled; h != nil {
		h(st.h.fullMethod, st.code())
	}
	c.smu.Lock()
	delete(c.streams, st.id)
	last := c.goingAway && len(c.streams) == 0
	c.smu.Unlock()
	if last {
		c.sync() // the call's status may still be another writer's to send
		c.raw.Close()
	}
}

// write runs fn, which writes whole frames, under the write lock, and
// sends them unless another writer is sending (it will send them too).
// flush false leaves them for the next writer.
func (c *conn) write(fn func(), flush bool) error {
	c.wmu.Lock()
	if c.werr != nil || !c.ready {
		err := c.werr
		c.wmu.Unlock()
		if err == nil {
			err = errConnClosed
		}
		return err
	}
	fn()
	if !flush || c.flushing {
		c.wmu.Unlock()
		return nil
	}
	c.flushing = true
	return c.flush(maxFlushRounds)
}

// maxFlushRounds bounds how many times a call's goroutine sends for
// others before it hands the sending to a goroutine of its own and goes
// back to its call.
const maxFlushRounds = 8

// minBatch is how many bytes gathered a writer sends without first
// yielding to the goroutines ready to run.
const minBatch = 1000

// flush sends what has gathered, rounds times at most; called with wmu
// held and flushing set, it returns with wmu released.
func (c *conn) flush(rounds int) error {
	yielded := false
	for ; len(c.out) > 0 && c.werr == nil; rounds-- {
		if len(c.out) < minBatch && !yielded {
			// Let the calls ready to run write theirs first: one system
			// call for them all (grpc-go's writer does the same).
			yielded = true
			c.wmu.Unlock()
			runtime.Gosched()
			c.wmu.Lock()
			continue
		}
		if rounds == 0 {
			c.wmu.Unlock()
			go func() {
				c.wmu.Lock()
				c.flush(-1)
			}()
			return nil
		}
		b := c.out
		c.out = c.spare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(b)
		c.wmu.Lock()
		if cap(b) <= 256<<10 {
			c.spare = b[:0]
		} else {
			c.spare = nil // not the old spare, which c.out now is: the next round would append into the bytes it sends
		}
		if err != nil && c.werr == nil {
			c.werr = err
		}
	}
	c.flushing = false
	c.flushed.Broadcast()
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		c.raw.Close() // the reader ends, and the calls with it
	}
	return err
}

// sync returns once what has gathered has been sent (or the connection
// has failed), whichever writer sends it: write returns at once when
// another writer is sending, so closing after it could lose the last
// frames.
func (c *conn) sync() {
	c.wmu.Lock()
	for c.werr == nil && (c.flushing || len(c.out) > 0) {
		if c.flushing {
			c.flushed.Wait()
			continue
		}
		c.flushing = true
		c.flush(-1)
		c.wmu.Lock()
	}
	c.wmu.Unlock()
}

func (c *conn) werrNow() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.werr
}

func isGRPCContentType(v string) bool {
	const ct = "application/grpc"
	if !strings.HasPrefix(v, ct) {
		return false
	}
	rest := v[len(ct):]
	return rest == "" || rest == "+proto" || rest[0] == ';' || rest[0] == '+'
}

// unknownMethod says what a path names that the server does not serve,
// in grpc-go's words.
func (s *Server) unknownMethod(path string) string {
	p := strings.TrimPrefix(path, "/")
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return fmt.Sprintf("malformed method name: %q", path)
	}
	if _, ok := s.services[p[:i]]; !ok {
		return fmt.Sprintf("unknown service %s", p[:i])
	}
	return fmt.Sprintf("unknown method %s for service %s", p[i+1:], p[:i])
}

func decodeBin(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

var (
	errCanceledByClient = context.Canceled
	errConnClosed       = errors.New("grpcserver: the connection closed")
	errFlowControl      = errors.New("grpcserver: flow control window overflow")
)

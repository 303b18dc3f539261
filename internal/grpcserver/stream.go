package grpcserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omnigate/omnigate/internal/bufpool"
)

// stream is one call: grpc.ServerStream to its handler.
type stream struct {
	c         *conn
	id        uint32
	h         *handler
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stopTimer context.CancelFunc // the deadline's, when there is one
	ts        transportStream    // the call as grpc.SetHeader finds it in ctx

	// Receiving, under rmu: bytes come from the reader, messages go to
	// the handler. owed is what the client sent that the server has not
	// given back to the stream's window: given back as it comes while
	// the bytes buffered stay within a message's bound, else as the
	// handler takes them.
	rmu      sync.Mutex
	rbuf     []byte
	rdone    bool  // the client's half is closed
	rerr     error // reset: RecvMsg fails with it
	rnotify  chan struct{}
	owed     uint32
	window   int64 // the stream's receive window left
	started  bool  // handed to a worker
	tooLarge bool  // a message past the bound came; the call is refused
	read     bool  // a message was read

	// Sending: hmu guards the metadata and whether the header went out;
	// sendWindow is under c.fmu.
	hmu        sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool
	sendWindow int64
	over       atomic.Bool  // reset or done: nothing more is written
	sent       atomic.Int32 // the status code sent, plus one (0: none)
	held       *[]byte      // messages held, each with its prefix (pooled): the handler's alone
}

// code is the call's status code: the one sent, else what ended it
// (Canceled, or Unavailable for a connection lost).
func (st *stream) code() codes.Code {
	if c := st.sent.Load(); c > 0 {
		return codes.Code(c - 1)
	}
	if errors.Is(context.Cause(st.ctx), errConnClosed) {
		return codes.Unavailable
	}
	return codes.Canceled
}

func newStream(c *conn, id uint32, h *handler, md metadata.MD, timeout time.Duration) *stream {
	st := &stream{c: c, id: id, h: h, window: int64(c.srv.opt.StreamWindow)}
	c.fmu.Lock()
	st.sendWindow = c.initialWindow
	c.fmu.Unlock()
	ctx, cancel := context.WithCancelCause(context.Background())
	st.cancel = cancel
	if timeout > 0 {
		ctx, st.stopTimer = context.WithTimeout(ctx, timeout)
	}
	if md != nil {
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	st.ts.st = st
	st.ctx = grpc.NewContextWithServerTransportStream(ctx, &st.ts)
	if h.clientStreams {
		st.rnotify = make(chan struct{}, 1)
	}
	return st
}

// recvData takes n bytes of the stream's DATA (data, less padding) from
// the reader.
func (st *stream) recvData(data []byte, n uint32, end bool) {
	c := st.c
	max := c.srv.opt.MaxRecvMsgSize + 5
	st.rmu.Lock()
	if int64(n) > st.window {
		st.rmu.Unlock()
		c.streamError(st.id, http2.ErrCodeFlowControl)
		return
	}
	st.window -= int64(n)
	if st.rerr != nil || st.tooLarge {
		st.rmu.Unlock()
		return
	}
	if st.rbuf == nil && len(data) >= 5 {
		// sized for the first message, as its prefix says
		st.rbuf = make([]byte, 0, min(5+int(binary.BigEndian.Uint32(data[1:5])), max, 1<<20))
	}
	st.rbuf = append(st.rbuf, data...)
	st.owed += n
	var give uint32
	if len(st.rbuf) <= max && st.owed >= c.srv.opt.StreamWindow/4 {
		give, st.owed = st.owed, 0
		st.window += int64(give)
	}
	large := !st.h.clientStreams && !st.started && st.firstTooLarge(max)
	if large {
		st.tooLarge = true
	}
	st.rmu.Unlock()
	if give > 0 && !end {
		c.write(func() { c.writeWindowUpdate(st.id, give) }, true)
	}
	if large {
		st.refuseTooLarge()
		return
	}
	if end {
		st.endRecv()
	} else if st.rnotify != nil {
		st.notify()
	}
}

// firstTooLarge: the buffered message (of a call that takes one) is past
// the bound, as its prefix says or as its bytes are. Under rmu.
func (st *stream) firstTooLarge(max int) bool {
	if len(st.rbuf) >= 5 && int(binary.BigEndian.Uint32(st.rbuf[1:5])) > max-5 {
		return true
	}
	return len(st.rbuf) > max
}

// refuseTooLarge ends a call whose one message is past the bound before
// it runs, as grpc-go does once it reads the prefix.
func (st *stream) refuseTooLarge() {
	n := 0
	st.rmu.Lock()
	if len(st.rbuf) >= 5 {
		n = int(binary.BigEndian.Uint32(st.rbuf[1:5]))
	}
	st.rbuf = nil
	st.started = true
	st.rmu.Unlock()
	err := status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, st.c.srv.opt.MaxRecvMsgSize)
	st.finish(err)
	st.release()
	st.c.streamDone(st)
}

// endRecv closes the client's half: a call that takes one message runs
// now.
func (st *stream) endRecv() {
	st.rmu.Lock()
	st.rdone = true
	run := !st.h.clientStreams && !st.started && !st.tooLarge && st.rerr == nil
	if run {
		st.started = true
	}
	st.rmu.Unlock()
	if run {
		st.c.srv.dispatch(st)
	} else if st.rnotify != nil {
		st.notify()
	}
}

func (st *stream) notify() {
	select {
	case st.rnotify <- struct{}{}:
	default:
	}
}

// reset ends the call from the client's side (RST_STREAM) or the
// connection's: its context is cancelled and nothing more is written.
func (st *stream) reset(cause error) {
	st.over.Store(true)
	st.rmu.Lock()
	if st.rerr == nil {
		st.rerr = status.FromContextError(context.Canceled).Err()
		if cause != errCanceledByClient {
			st.rerr = status.Error(codes.Unavailable, cause.Error())
		}
	}
	ran := st.started || st.h.clientStreams
	st.rmu.Unlock()
	st.cancel(cause)
	if st.rnotify != nil {
		st.notify()
	}
	st.c.fmu.Lock()
	st.c.fcond.Broadcast()
	st.c.fmu.Unlock()
	if !ran {
		st.c.streamDone(st) // never ran: nothing else forgets it
	}
}

// recvClosed: the client's half is closed.
func (st *stream) recvClosed() bool {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	return st.rdone
}

// run serves the call on the calling goroutine. A handler that panics
// ends its call with Internal, not the process.
func (st *stream) run() {
	defer st.c.streamDone(st)
	defer st.release()
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			st.c.srv.opt.Log.Error("gRPC handler panicked", "method", st.h.fullMethod, "panic", fmt.Sprint(p), "stack", string(buf))
			st.finish(status.Error(codes.Internal, "grpc: the server failed to serve the call"))
		}
	}()
	h := st.h
	if h.unary != nil {
		reply, err := h.unary(h.srv, st.ctx, st.RecvMsg, nil)
		if err == nil {
			err = st.send(reply, true, true)
			if err == nil {
				return
			}
		}
		st.finish(err)
		return
	}
	st.finish(h.stream(h.srv, st))
}

func (st *stream) release() {
	if st.stopTimer != nil {
		st.stopTimer()
	}
	st.cancel(nil)
	if st.held != nil {
		bufpool.Put(st.held)
		st.held = nil
	}
}

// RecvMsg reads the next message into m: io.EOF once the client has sent
// them all.
func (st *stream) RecvMsg(m any) error {
	opt := &st.c.srv.opt
	st.rmu.Lock()
	for {
		if len(st.rbuf) >= 5 {
			n := int(binary.BigEndian.Uint32(st.rbuf[1:5]))
			if n > opt.MaxRecvMsgSize {
				st.rmu.Unlock()
				return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, opt.MaxRecvMsgSize)
			}
			if st.rbuf[0] != 0 {
				st.rmu.Unlock()
				return status.Error(codes.Internal, "grpc: compressed flag set with identity or empty encoding")
			}
			if len(st.rbuf) >= 5+n {
				msg := st.rbuf[5 : 5+n : 5+n]
				st.rbuf = st.rbuf[5+n:]
				st.read = true
				// Give the window back once a quarter of it is owed, as
				// the reader does, and never once the client has sent all:
				// a unary call's update would be a write for nothing.
				var give uint32
				if !st.rdone && st.owed >= opt.StreamWindow/4 && len(st.rbuf) <= opt.MaxRecvMsgSize+5 {
					give, st.owed = st.owed, 0
					st.window += int64(give)
				}
				st.rmu.Unlock()
				if give > 0 {
					st.c.write(func() { st.c.writeWindowUpdate(st.id, give) }, true)
				}
				if err := opt.Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, m); err != nil {
					return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
				}
				return nil
			}
		}
		if st.rerr != nil {
			err := st.rerr
			st.rmu.Unlock()
			return err
		}
		if st.rdone {
			n := len(st.rbuf)
			st.rmu.Unlock()
			if n == 0 && !st.h.clientStreams && !st.read {
				return status.Error(codes.Internal, "grpc: the call has no request message")
			}
			if n == 0 {
				return io.EOF
			}
			return status.Error(codes.Internal, "grpc: the client's stream ended within a message")
		}
		st.rmu.Unlock()
		if st.rnotify == nil {
			return status.Error(codes.Internal, "grpc: a unary call read before its message came")
		}
		select {
		case <-st.rnotify:
		case <-st.ctx.Done():
			return status.FromContextError(st.ctx.Err()).Err()
		}
		st.rmu.Lock()
	}
}

// Encoded is a message already in protobuf wire format: the server sends
// its bytes as they are, without the codec (copied before SendMsg
// returns).
type Encoded []byte

// Holder is the stream a streaming call's handler is given
// (grpc.ServerStream) as one that can hold messages back: Hold writes a
// message already encoded as SendMsg would but leaves the sending to the
// next Flush, or to the next message or status sent (a handler that sends
// a burst of messages sends them in one system call).
type Holder interface {
	Hold(m Encoded) error
	Flush() error
}

// SendMsg sends m.
func (st *stream) SendMsg(m any) error { return st.send(m, false, true) }

// Hold keeps m, prefixed, for the next flush: the messages held go as
// one run of DATA frames, taking the windows and the connection's lock
// once.
func (st *stream) Hold(m Encoded) error {
	if n := len(m); n > st.c.srv.opt.MaxSendMsgSize {
		return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", n, st.c.srv.opt.MaxSendMsgSize)
	}
	if st.held == nil {
		st.held = bufpool.Get(5 + len(m))
	}
	b := binary.BigEndian.AppendUint32(append(*st.held, 0), uint32(len(m)))
	*st.held = append(b, m...)
	return nil
}

// Flush sends the messages held.
func (st *stream) Flush() error { return st.writeHeld(true) }

// writeHeld writes the messages held; with flush, sends them.
func (st *stream) writeHeld(flush bool) error {
	if st.held == nil || len(*st.held) == 0 {
		return nil
	}
	err := st.writeMessage([2][]byte{*st.held}, false, flush)
	*st.held = (*st.held)[:0]
	return err
}

var _ Holder = (*stream)(nil)

// send writes m, after the header when it has not gone out; with last,
// the call's status (OK) after it; with flush, sends it.
func (st *stream) send(m any, last, flush bool) error {
	if e, ok := m.(Encoded); ok {
		return st.sendBytes(e, last, flush)
	}
	data, err := st.c.srv.opt.Codec.Marshal(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	defer data.Free()
	if len(data) == 1 {
		return st.sendBytes(data[0].ReadOnlyData(), last, flush)
	}
	return st.sendBytes(data.Materialize(), last, flush)
}

// sendBytes sends a message's wire format, as send does, after the
// messages held.
func (st *stream) sendBytes(body []byte, last, flush bool) error {
	opt := &st.c.srv.opt
	n := len(body)
	if n > opt.MaxSendMsgSize {
		return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", n, opt.MaxSendMsgSize)
	}
	if err := st.writeHeld(false); err != nil {
		return err
	}
	var prefix [5]byte
	binary.BigEndian.PutUint32(prefix[1:], uint32(n))
	return st.writeMessage([2][]byte{prefix[:], body}, last, flush)
}

// writeMessage sends a message's bytes (its prefix and its body) as the
// windows allow: at once when they hold it, header, message and, with
// last, status in one flush (none without flush, unless the windows
// make it wait).
func (st *stream) writeMessage(msg [2][]byte, last, flush bool) error {
	c := st.c
	total := len(msg[0]) + len(msg[1])
	sent := 0
	for sent < total {
		quota, maxFrame, err := st.takeQuota(total - sent)
		if err != nil {
			return err
		}
		end := sent+quota == total
		werr := c.write(func() {
			st.writeHeaderOnce()
			c.writeDataParts(st.id, msg, sent, quota, maxFrame)
			if end && last {
				st.writeTrailers(nil)
			}
		}, flush || !end)
		if werr != nil {
			return status.Error(codes.Unavailable, werr.Error())
		}
		sent += quota
	}
	return nil
}

// takeQuota waits until the stream's and the connection's windows allow
// some of want bytes and takes up to want of them.
func (st *stream) takeQuota(want int) (int, int, error) {
	c := st.c
	c.fmu.Lock()
	defer c.fmu.Unlock()
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		if st.over.Load() {
			if err := context.Cause(st.ctx); err != nil && err != errCanceledByClient && err != context.Canceled {
				return 0, 0, status.Error(codes.Unavailable, err.Error())
			}
			return 0, 0, status.FromContextError(context.Canceled).Err()
		}
		if err := st.ctx.Err(); err != nil {
			return 0, 0, status.FromContextError(err).Err()
		}
		if q := min(int64(want), st.sendWindow, c.sendWindow); q > 0 {
			st.sendWindow -= q
			c.sendWindow -= q
			return int(q), c.maxFrame, nil
		}
		if want == 0 {
			return 0, c.maxFrame, nil
		}
		if stop == nil {
			stop = context.AfterFunc(st.ctx, func() {
				c.fmu.Lock()
				c.fcond.Broadcast()
				c.fmu.Unlock()
			})
		}
		c.fcond.Wait()
	}
}

// writeHeaderOnce writes the header, once. Under c.wmu.
func (st *stream) writeHeaderOnce() {
	st.hmu.Lock()
	defer st.hmu.Unlock()
	if st.headerSent {
		return
	}
	st.headerSent = true
	c := st.c
	c.hbuf.Reset()
	writeHead(c.henc)
	writeMD(c.henc, st.header)
	c.writeHeaderBlock(st.id, false)
}

// writeTrailers writes the call's status and trailer metadata, ending the
// stream; with no header sent yet, in the header (trailers only). err nil
// is OK. Under c.wmu.
func (st *stream) writeTrailers(err error) {
	st.over.Store(true)
	c := st.c
	st.hmu.Lock()
	only := !st.headerSent && len(st.header) == 0
	trailer := st.trailer
	st.hmu.Unlock()
	if !only {
		st.writeHeaderOnce() // header metadata goes in a header of its own, as grpc-go sends it
	}
	c.hbuf.Reset()
	if only {
		st.hmu.Lock()
		st.headerSent = true
		st.hmu.Unlock()
		writeHead(c.henc)
	}
	if err == nil {
		st.sent.Store(1)
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	} else {
		s := statusOf(err)
		st.sent.Store(int32(s.Code()) + 1)
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: codeText(s.Code())})
		if msg := s.Message(); msg != "" {
			c.henc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: encodeGRPCMessage(msg), Sensitive: true})
		}
		if p := s.Proto(); len(p.GetDetails()) > 0 {
			if b, err := proto.Marshal(p); err == nil {
				c.henc.WriteField(hpack.HeaderField{Name: "grpc-status-details-bin", Value: encodeBin(b), Sensitive: true})
			}
		}
	}
	writeMD(c.henc, trailer)
	c.writeHeaderBlock(st.id, true)
	st.rmu.Lock()
	rst := !st.rdone
	st.rmu.Unlock()
	if rst {
		c.writeRSTStream(st.id, http2.ErrCodeNo) // the server needs no more of the call
	}
}

// finish ends the call with err's status (nil: OK), unless it is over.
func (st *stream) finish(err error) {
	if st.over.Load() {
		return
	}
	// The messages held go before the status. Where they cannot (the
	// deadline passed, the windows are shut), the status goes alone.
	st.writeHeld(false)
	st.c.write(func() {
		if !st.over.Load() {
			st.writeTrailers(err)
		}
	}, true)
}

// statusOf is err as a status: a context's error as its code, anything
// else not a status Unknown.
func statusOf(err error) *status.Status {
	if s, ok := status.FromError(err); ok {
		return s
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err)
	}
	return status.New(codes.Unknown, err.Error())
}

// The handler's side of grpc.ServerStream.

func (st *stream) Context() context.Context { return st.ctx }

func (st *stream) SetHeader(md metadata.MD) error {
	if md.Len() == 0 {
		return nil
	}
	st.hmu.Lock()
	defer st.hmu.Unlock()
	if st.headerSent {
		return status.Error(codes.Internal, "transport: SetHeader called after the header was sent")
	}
	st.header = metadata.Join(st.header, md)
	return nil
}

func (st *stream) SendHeader(md metadata.MD) error {
	if err := st.SetHeader(md); err != nil {
		return err
	}
	if st.over.Load() {
		return status.FromContextError(context.Canceled).Err()
	}
	return st.c.write(st.writeHeaderOnce, true)
}

func (st *stream) SetTrailer(md metadata.MD) {
	if md.Len() == 0 {
		return
	}
	st.hmu.Lock()
	st.trailer = metadata.Join(st.trailer, md)
	st.hmu.Unlock()
}

// transportStream is the call as grpc.SetHeader, grpc.SendHeader,
// grpc.SetTrailer and grpc.Method find it in the call's context.
type transportStream struct{ st *stream }

func (t *transportStream) Method() string                  { return t.st.h.fullMethod }
func (t *transportStream) SetHeader(md metadata.MD) error  { return t.st.SetHeader(md) }
func (t *transportStream) SendHeader(md metadata.MD) error { return t.st.SendHeader(md) }
func (t *transportStream) SetTrailer(md metadata.MD) error { t.st.SetTrailer(md); return nil }

var (
	_ grpc.ServerStream          = (*stream)(nil)
	_ grpc.ServerTransportStream = (*transportStream)(nil)
)

// writeHead writes the fields every answer's header starts with.
func writeHead(enc *hpack.Encoder) {
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
}

// writeMD writes metadata as header fields: keys in lowercase, gRPC's own
// and pseudo-headers left out, -bin values in base64. A value that is new
// on every call (unique) is written as a literal never indexed: put in
// the connection's HPACK table it would only push out the fields that
// repeat, and cost the table's bookkeeping on both ends.
func writeMD(enc *hpack.Encoder, md metadata.MD) {
	for k, vs := range md {
		if k == "" || k[0] == ':' || reserved(k) {
			continue
		}
		k = lower(k)
		bin := strings.HasSuffix(k, "-bin")
		for _, v := range vs {
			if bin {
				v = encodeBin([]byte(v))
			}
			enc.WriteField(hpack.HeaderField{Name: k, Value: v, Sensitive: bin || unique(k)})
		}
	}
}

// unique reports whether metadata key k carries a value of its own on
// every call.
func unique(k string) bool {
	switch k {
	case "x-request-id", "traceparent", "tracestate", "grpc-trace-bin":
		return true
	}
	return false
}

func reserved(k string) bool {
	switch k {
	case "content-type", "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "grpc-timeout", "te":
		return true
	}
	return false
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

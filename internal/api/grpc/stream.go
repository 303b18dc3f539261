package grpcapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/grpcserver"
	"github.com/omnigate/omnigate/internal/relay"
	"github.com/omnigate/omnigate/internal/request"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// StreamChatCompletion serves a streamed chat completion: the request
// through the core as the HTTP front end serves one with "stream": true,
// and the answer's events relayed by the relay the HTTP front end uses,
// each sent as one message as it arrives.
func (s *Server) StreamChatCompletion(req *pb.ChatCompletionRequest, stream grpc.ServerStreamingServer[pb.ChatCompletionChunk]) error {
	ctx := stream.Context() // ended with relay.ErrShutdown at the end of a shutdown's grace (grpcserver.Server.CancelCalls)
	var call dispatch.Call
	call.Header, call.RequestID = s.incoming(ctx)
	call.API = apiName
	md := metadata.MD{"x-request-id": []string{call.RequestID}}
	buf := bufpool.Get(4 << 10)
	body, err := s.encode(func(b []byte) ([]byte, error) { return appendChat(b, req, true) }, buf)
	if err != nil {
		bufpool.Put(buf)
		stream.SetHeader(md)
		return s.reject(ctx, call.RequestID, err, md)
	}
	view := s.views.Get().(*request.Request)
	if err := request.Parse(request.Chat, body, view); err != nil {
		s.views.Put(view)
		bufpool.Put(buf)
		stream.SetHeader(md)
		return s.reject(ctx, call.RequestID, err, md)
	}
	call.Req, call.Body = view, view.Normalize(body)
	call.Deadline, _ = ctx.Deadline()
	a, err := s.opt.Core.Do(ctx, &call)
	// No retry can need the request once the answer streams (a
	// continuation keeps its own copy): the view and the buffer go back.
	s.views.Put(view)
	call.Req, call.Body = nil, nil
	bufpool.Put(buf)
	if err != nil {
		err = s.failCall(ctx, &call, err, md) // fills md: rate limits, retry-after
		stream.SetHeader(md)
		return err
	}
	answerMD(md, &call, a)
	stream.SetHeader(md)
	status, rerr, err := s.relayStream(ctx, stream, &call, &a)
	s.opt.Core.Done(&call, a, status, rerr)
	return err
}

// relayStream relays the answer *ap to stream: the status to record, what
// broke the relay (for Done) and the call's error. A continuable stream
// its upstream broke is continued (*ap is then the answer that carried it
// on); one that cannot be ends with the status its HTTP error event would
// carry.
func (s *Server) relayStream(ctx context.Context, stream grpc.ServerStreamingServer[pb.ChatCompletionChunk], call *dispatch.Call,
	ap **dispatch.Answer) (int, error, error) {
	a := *ap
	resp := a.Resp
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// An engine that ignored stream:true: its whole answer is one chunk.
		out := new(pb.ChatCompletionResponse)
		status, rerr, err := s.readAnswer(ctx, call, a, func(b []byte) error { return decodeChat(b, out) })
		if err == nil {
			err = stream.Send(chunkOf(out))
		}
		return status, rerr, err
	}
	sink := newChunkSink(stream)
	defer sink.free()
	fw := &relay.Writer{W: sink, Tap: a.Tap(), Whole: a.Continuable()}
	if sink.hold != nil {
		fw.F = sink // the chunks of one read from the engine go out in one flush
	}
	var err error
	if wt, ok := resp.Body.(io.WriterTo); ok {
		_, err = wt.WriteTo(fw)
	} else {
		err = relay.Copy(fw, resp.Body)
	}
	if err == nil {
		sink.finish() // an error is the client's, kept in sink.sendErr
	}
	o := s.streams.End(ctx, fw, err, call, ap)
	switch {
	case o.Status == apierror.StatusClientClosed || sink.sendErr != nil:
		status, derr := s.ended(call)
		return status, derr, errorOf(ctx, context.Canceled)
	case sink.failed != nil:
		// The engine's error event (or an event that is no chunk) went by
		// as it came, as it goes to an HTTP client, which reads it first:
		// the client hears of it. The stream is recorded as End judged it.
		status, rerr := (*ap).Resp.StatusCode, error(nil)
		if o.Status != 0 {
			status, rerr = o.Status, o.Err
		}
		return status, rerr, Status(sink.failed).Err()
	case o.Held:
		e := eventError(eventData(fw.Held()), o.Status)
		return o.Status, o.Err, Status(e).Err()
	case o.Tell != nil:
		return o.Status, o.Err, Status(o.Tell).Err()
	}
	return (*ap).Resp.StatusCode, nil, nil
}

// chunkOf is a whole chat answer as the one chunk of a stream.
func chunkOf(r *pb.ChatCompletionResponse) *pb.ChatCompletionChunk {
	c := &pb.ChatCompletionChunk{Id: r.Id, Object: "chat.completion.chunk", Created: r.Created, Model: r.Model,
		Usage: r.Usage, SystemFingerprint: r.SystemFingerprint, ServiceTier: r.ServiceTier}
	for _, ch := range r.Choices {
		d := ch.Message
		for i, tc := range d.GetToolCalls() {
			n := int32(i)
			tc.Index = &n
		}
		c.Choices = append(c.Choices, &pb.ChunkChoice{Index: ch.Index, Delta: d, Logprobs: ch.Logprobs, FinishReason: ch.FinishReason})
	}
	return c
}

// chunkSink is the gRPC stream as the relay's wire: it reads the SSE
// events of what it is written and sends each chunk as a message, written
// from the event's JSON straight into wire format (wire_chunk.go). An
// error event, or an event that is not a chunk, ends what it sends: the
// call ends with its error once the relay is done.
type chunkSink struct {
	stream  grpc.ServerStreamingServer[pb.ChatCompletionChunk]
	hold    grpcserver.Holder // the stream, when it can hold chunks for a flush
	cw      chunkWriter
	line    []byte // the start of a line not yet ended
	data    []byte // the data of the event being read
	hasData bool
	errType bool            // the event is "event: error"
	failed  *apierror.Error // what ended the sending
	sendErr error           // a send failed: the client went away
}

// sinks keeps chunk sinks, with their buffers, for the streams to come.
var sinks sync.Pool // *chunkSink

// newChunkSink is a sink for stream; free gives it back.
func newChunkSink(stream grpc.ServerStreamingServer[pb.ChatCompletionChunk]) *chunkSink {
	k, _ := sinks.Get().(*chunkSink)
	if k == nil {
		k = new(chunkSink)
	}
	k.stream, k.hold = stream, holderOf(stream)
	return k
}

// free gives k back, its buffers emptied (a large one dropped) and the
// last stream's head forgotten.
func (k *chunkSink) free() {
	cw := &k.cw
	*k = chunkSink{line: emptied(k.line), data: emptied(k.data), cw: chunkWriter{
		r: reader{scratch: emptied(cw.r.scratch)}, w: wire{b: emptied(cw.w.b)}, bytes: cw.bytes[:0],
		head: emptied(cw.head), headWire: emptied(cw.headWire), rest: emptied(cw.rest),
	}}
	sinks.Put(k)
}

// emptied is b emptied, or nil past 64 KiB.
func emptied(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

// Write reads the events of p, sending each chunk whose event ends in it;
// an error is the client's (it went away).
func (k *chunkSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && k.failed == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			k.line = append(k.line, p...)
			break
		}
		line := p[:i]
		if len(k.line) > 0 {
			k.line = append(k.line, line...)
			line = k.line
		}
		p = p[i+1:]
		err := k.field(line)
		k.line = k.line[:0]
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// finish sends an event the stream ended without its blank line, as an
// SSE reader dispatches it when its lines are whole (a line cut short is
// dropped).
func (k *chunkSink) finish() {
	if k.failed == nil && k.sendErr == nil && len(k.line) == 0 {
		k.dispatch()
	}
}

// field reads one line of an event; a blank one ends the event. Fields
// other than data and event (id, retry, comments) say nothing here.
func (k *chunkSink) field(line []byte) error {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return k.dispatch()
	}
	if d, ok := bytes.CutPrefix(line, dataField); ok {
		if len(d) > 0 && d[0] == ' ' {
			d = d[1:]
		}
		if k.hasData {
			k.data = append(k.data, '\n')
		}
		k.data = append(k.data, d...)
		k.hasData = true
		return nil
	}
	if v, ok := bytes.CutPrefix(line, eventField); ok {
		k.errType = string(bytes.TrimSpace(v)) == "error"
	}
	return nil
}

var (
	dataField  = []byte("data:")
	eventField = []byte("event:")
	doneData   = []byte("[DONE]")
	errorKey   = []byte(`"error"`)
)

// dispatch sends the event read so far.
func (k *chunkSink) dispatch() error {
	data, had, errType := k.data, k.hasData, k.errType
	k.data, k.hasData, k.errType = k.data[:0], false, false
	switch {
	case !had || bytes.Equal(data, doneData):
		return nil
	case errType || isErrorData(data):
		k.failed = eventError(data, http.StatusBadGateway)
		return nil
	}
	c, err := k.cw.write(data)
	if err != nil {
		e := apierror.New(http.StatusBadGateway, backend.CodeInvalidResponse, "The upstream sent a stream event that is not a chunk.")
		e.Err = err
		k.failed = e
		return nil
	}
	// Already in wire format: the server sends the bytes as they are.
	if err := k.send(grpcserver.Encoded(c)); err != nil {
		k.sendErr = err
		return err
	}
	return nil
}

// send sends a chunk, held for the next Flush when the stream can hold
// it.
func (k *chunkSink) send(m grpcserver.Encoded) error {
	if k.hold != nil {
		return k.hold.Hold(m)
	}
	return k.stream.SendMsg(m)
}

// Flush sends the chunks held: the relay calls it before it waits for
// the engine.
func (k *chunkSink) Flush() {
	if k.hold != nil && k.sendErr == nil {
		if err := k.hold.Flush(); err != nil {
			k.sendErr = err
		}
	}
}

// holderOf is the call's stream as a Holder, if it is one.
func holderOf(s grpc.ServerStreamingServer[pb.ChatCompletionChunk]) grpcserver.Holder {
	var ss any = s
	if g, ok := s.(*grpc.GenericServerStream[pb.ChatCompletionRequest, pb.ChatCompletionChunk]); ok {
		ss = g.ServerStream
	}
	h, _ := ss.(grpcserver.Holder)
	return h
}

// isErrorData reports whether an event's data is an error object.
func isErrorData(data []byte) bool {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	return bytes.HasPrefix(data[skipSpace(data, i+1):], errorKey)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// eventData is the data of one SSE event (the engine's error event held
// back), its data lines joined.
func eventData(ev []byte) []byte {
	var out []byte
	for line := range bytes.SplitSeq(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), dataField); ok {
			if len(out) > 0 {
				out = append(out, '\n')
			}
			out = append(out, bytes.TrimPrefix(d, []byte(" "))...)
		}
	}
	return out
}

var _ io.Writer = (*chunkSink)(nil)

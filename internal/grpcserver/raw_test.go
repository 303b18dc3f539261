package grpcserver

// Protocol robustness: a client that writes HTTP/2 frame by frame, with
// x/net's Framer and hpack, over a plain TCP connection.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

type rawClient struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

// dialRaw connects to addr; nothing is written yet.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitFor))
	r := &rawClient{t: t, nc: nc}
	r.fr = http2.NewFramer(nc, nc)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.AllowIllegalWrites = true
	r.henc = hpack.NewEncoder(&r.hbuf)
	return r
}

// startRaw connects, sends the preface and SETTINGS, and acknowledges the
// server's SETTINGS, which must come first.
func startRaw(t *testing.T, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	r := dialRaw(t, addr)
	r.write([]byte(http2.ClientPreface))
	r.check(r.fr.WriteSettings(settings...))
	f, err := r.fr.ReadFrame()
	if err != nil {
		t.Fatalf("the server's SETTINGS: %v", err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("the server's first frame is %v, not its SETTINGS", f)
	}
	r.check(r.fr.WriteSettingsAck())
	return r
}

func (r *rawClient) check(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	_, err := r.nc.Write(b)
	r.check(err)
}

// headers writes a HEADERS frame of the fields kv (name, value, ...).
func (r *rawClient) headers(id uint32, end bool, kv ...string) {
	r.t.Helper()
	r.check(r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(kv...), EndStream: end, EndHeaders: true}))
}

func (r *rawClient) block(kv ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		r.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(r.hbuf.Bytes())
}

func (r *rawClient) data(id uint32, end bool, b []byte) {
	r.t.Helper()
	r.check(r.fr.WriteData(id, end, b))
}

// call is a gRPC request's header fields for path, then extra ones.
func call(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "http", ":path", path, ":authority", "raw.test",
		"content-type", "application/grpc", "te", "trailers"}, extra...)
}

// lpm is m as a gRPC message: its 5-byte prefix and its bytes.
func lpm(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b))), b...)
}

const (
	unaryPath  = "/grpc.testing.TestService/UnaryCall"
	inputPath  = "/grpc.testing.TestService/StreamingInputCall"
	outputPath = "/grpc.testing.TestService/StreamingOutputCall"
	duplexPath = "/grpc.testing.TestService/FullDuplexCall"
)

// rawResponse is what the server answered on a stream.
type rawResponse struct {
	headers [][]hpack.HeaderField // each HEADERS' fields, in order
	data    []byte
	rst     http2.ErrCode
	reset   bool
}

// field is the value of name in the i-th HEADERS (-1: the last).
func (rr rawResponse) field(i int, name string) string {
	if i < 0 {
		i += len(rr.headers)
	}
	if i < 0 || i >= len(rr.headers) {
		return ""
	}
	for _, f := range rr.headers[i] {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// response reads the server's answer on stream id, to its END_STREAM or
// RST_STREAM; other streams' frames are skipped, a GOAWAY fails.
func (r *rawClient) response(id uint32) rawResponse {
	r.t.Helper()
	return r.responses(id)[id]
}

// responses reads the answers on streams ids, whatever their order.
func (r *rawClient) responses(ids ...uint32) map[uint32]rawResponse {
	r.t.Helper()
	out := map[uint32]rawResponse{}
	open := map[uint32]bool{}
	for _, id := range ids {
		open[id] = true
	}
	for len(open) > 0 {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("reading the answers of streams %v: %v", ids, err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			r.t.Fatalf("GOAWAY %v while waiting for the answers of streams %v", ga.ErrCode, ids)
		}
		id := f.Header().StreamID
		if !open[id] {
			continue
		}
		rr, end := out[id], false
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			rr.headers = append(rr.headers, f.Fields)
			end = f.StreamEnded()
		case *http2.DataFrame:
			rr.data = append(rr.data, f.Data()...)
			end = f.StreamEnded()
		case *http2.RSTStreamFrame:
			rr.rst, rr.reset, end = f.ErrCode, true, true
		}
		out[id] = rr
		if end {
			delete(open, id)
		}
	}
	return out
}

// await reads frames until one matches; what comes before is skipped.
func (r *rawClient) await(what string, match func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// goAway waits for the server's GOAWAY, then for the connection's end.
func (r *rawClient) goAway() http2.ErrCode {
	r.t.Helper()
	ga := r.await("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	code := ga.ErrCode
	r.closed()
	return code
}

// closed reads until the server closes the connection.
func (r *rawClient) closed() {
	r.t.Helper()
	_, err := io.Copy(io.Discard, r.nc)
	if isTimeout(err) {
		r.t.Fatal("the server did not close the connection")
	}
}

// ping sends a PING and waits for its ACK: the connection still works,
// and the server has handled what came before. It returns the frames
// of stream id (when not 0) that came before the ACK.
func (r *rawClient) ping(id uint32) []http2.Frame {
	r.t.Helper()
	data := [8]byte{'p', 'i', 'n', 'g', 0, 1, 2, 3}
	r.check(r.fr.WritePing(false, data))
	var seen []http2.Frame
	r.await("PING ACK", func(f http2.Frame) bool {
		if id != 0 && f.Header().StreamID == id {
			seen = append(seen, f)
		}
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == data
	})
	return seen
}

// rawServer is a TestService for the raw tests: its client-streaming and
// bidi calls tell started when they begin and wait for their context's
// end, which they tell ended.
type rawServer struct {
	started chan struct{}
	ended   chan error
}

func newRawServer(t *testing.T, opt Options) (*env, *rawServer) {
	rs := &rawServer{started: make(chan struct{}, 4), ended: make(chan error, 4)}
	wait := func(ctx context.Context) error {
		rs.started <- struct{}{}
		<-ctx.Done()
		rs.ended <- ctx.Err()
		return ctx.Err()
	}
	ts := &testServer{
		input:  func(s testpb.TestService_StreamingInputCallServer) error { return wait(s.Context()) },
		duplex: func(s testpb.TestService_FullDuplexCallServer) error { return wait(s.Context()) },
	}
	return startTestServer(t, opt, ts), rs
}

// checkAnswer checks a unary answer: :status 200, the message, OK.
func checkAnswer(t *testing.T, rr rawResponse, body []byte) {
	t.Helper()
	if len(rr.headers) != 2 || rr.field(0, ":status") != "200" || rr.field(0, "content-type") != "application/grpc" || rr.field(1, "grpc-status") != "0" {
		t.Fatalf("answer %+v, want a header, a message and OK", rr.headers)
	}
	if len(rr.data) < 5 || int(binary.BigEndian.Uint32(rr.data[1:5])) != len(rr.data)-5 {
		t.Fatalf("answer's data is not one message: % x", rr.data[:min(len(rr.data), 16)])
	}
	var resp testpb.SimpleResponse
	if err := proto.Unmarshal(rr.data[5:], &resp); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "echoed payload", resp.GetPayload().GetBody(), body)
}

// refused checks a call answered with its status alone.
func refused(t *testing.T, rr rawResponse, httpStatus, grpcStatus string) {
	t.Helper()
	if rr.reset || len(rr.headers) != 1 || len(rr.data) != 0 {
		t.Fatalf("answer %+v (data %d bytes, reset %v), want its status alone", rr.headers, len(rr.data), rr.reset)
	}
	if got := rr.field(0, ":status"); got != httpStatus {
		t.Errorf(":status %s, want %s", got, httpStatus)
	}
	if got := rr.field(0, "grpc-status"); got != grpcStatus {
		t.Errorf("grpc-status %s (%q), want %s", got, rr.field(0, "grpc-message"), grpcStatus)
	}
}

func TestRawCalls(t *testing.T) {
	body := []byte("raw payload")
	msg := func(t *testing.T) []byte { return lpm(t, simple(body)) }
	cases := []struct {
		name string
		opt  Options
		run  func(t *testing.T, r *rawClient)
	}{
		{"unary", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call(unaryPath)...)
			r.data(1, true, msg(t))
			checkAnswer(t, r.response(1), body)
		}},
		{"ended by trailers", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call(unaryPath)...)
			r.data(1, false, msg(t))
			r.headers(1, true)
			checkAnswer(t, r.response(1), body)
		}},
		{"message in pieces, padded", Options{}, func(t *testing.T, r *rawClient) {
			m := msg(t)
			r.headers(1, false, call(unaryPath)...)
			r.check(r.fr.WriteDataPadded(1, false, m[:2], make([]byte, 7)))
			r.check(r.fr.WriteDataPadded(1, false, m[2:9], nil))
			r.check(r.fr.WriteDataPadded(1, false, nil, make([]byte, 200)))
			r.check(r.fr.WriteDataPadded(1, true, m[9:], make([]byte, 1)))
			checkAnswer(t, r.response(1), body)
		}},
		{"CONTINUATION", Options{}, func(t *testing.T, r *rawClient) {
			b := r.block(call(unaryPath, "x-long", strings.Repeat("v", 30000))...)
			r.check(r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10]}))
			r.check(r.fr.WriteContinuation(1, false, b[10:16000]))
			r.check(r.fr.WriteContinuation(1, true, b[16000:]))
			r.data(1, true, msg(t))
			checkAnswer(t, r.response(1), body)
		}},
		{"calls on several streams", Options{}, func(t *testing.T, r *rawClient) {
			for id := uint32(1); id <= 9; id += 2 {
				r.headers(id, false, call(unaryPath)...)
			}
			for id := 9; id >= 1; id -= 2 { // their messages in the other order
				r.data(uint32(id), true, lpm(t, simple(bytes.Repeat([]byte{byte(id)}, id))))
			}
			rrs := r.responses(1, 3, 5, 7, 9)
			for id := 9; id >= 1; id -= 2 {
				checkAnswer(t, rrs[uint32(id)], bytes.Repeat([]byte{byte(id)}, id))
			}
		}},
		{"text/plain", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, ":method", "POST", ":scheme", "http", ":path", unaryPath, ":authority", "raw.test", "content-type", "text/plain")
			refused(t, r.response(1), "415", "13")
		}},
		{"no content-type", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, ":method", "POST", ":scheme", "http", ":path", unaryPath, ":authority", "raw.test")
			refused(t, r.response(1), "415", "13")
		}},
		{"GET", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, ":method", "GET", ":scheme", "http", ":path", unaryPath, ":authority", "raw.test", "content-type", "application/grpc")
			refused(t, r.response(1), "405", "13")
		}},
		{"unknown path", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call("/no.Such/Method")...)
			refused(t, r.response(1), "200", "12")
			r.data(1, true, msg(t)) // the rest of a call refused is dropped
			r.ping(0)
		}},
		{"malformed path", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, call("nopath")...)
			refused(t, r.response(1), "200", "12")
		}},
		{"compressed", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, call(unaryPath, "grpc-encoding", "gzip")...)
			refused(t, r.response(1), "200", "12")
		}},
		{"malformed grpc-timeout", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, call(unaryPath, "grpc-timeout", "12x")...)
			refused(t, r.response(1), "200", "13")
		}},
		{"malformed binary metadata", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, call(unaryPath, "k-bin", "not base64!")...)
			refused(t, r.response(1), "200", "13")
		}},
		{"metadata past the limit", Options{MaxHeaderListSize: 1024}, func(t *testing.T, r *rawClient) {
			kv := call(unaryPath)
			for range 10 {
				kv = append(kv, "x-big", strings.Repeat("b", 200))
			}
			r.headers(1, true, kv...)
			refused(t, r.response(1), "431", "8")
			r.headers(3, false, call(unaryPath)...) // the connection's header compression is intact
			r.data(3, true, msg(t))
			checkAnswer(t, r.response(3), body)
		}},
		{"no message", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, true, call(unaryPath)...)
			rr := r.response(1)
			if s := rr.field(-1, "grpc-status"); s != "13" {
				t.Errorf("a unary call without its message: grpc-status %q, want 13 (Internal)", s)
			}
		}},
		{"message cut short", Options{}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call(unaryPath)...)
			r.data(1, true, msg(t)[:8])
			refused(t, r.response(1), "200", "13")
		}},
		{"compressed flag without encoding", Options{}, func(t *testing.T, r *rawClient) {
			m := msg(t)
			m[0] = 1
			r.headers(1, false, call(unaryPath)...)
			r.data(1, true, m)
			refused(t, r.response(1), "200", "13")
		}},
		{"message past MaxRecvMsgSize", Options{MaxRecvMsgSize: 100}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call(unaryPath)...)
			r.data(1, false, lpm(t, simple(make([]byte, 1000))))
			refused(t, r.response(1), "200", "8")
			r.data(1, true, make([]byte, 100)) // dropped
			r.ping(0)
		}},
		{"stream limit", Options{MaxConcurrentStreams: 1}, func(t *testing.T, r *rawClient) {
			r.headers(1, false, call(inputPath)...)
			r.headers(3, false, call(inputPath)...)
			if rr := r.response(3); !rr.reset || rr.rst != http2.ErrCodeRefusedStream {
				t.Errorf("a call past the limit: %+v, want REFUSED_STREAM", rr)
			}
			r.check(r.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			r.ping(0)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newRawServer(t, tc.opt)
			r := startRaw(t, e.addr)
			tc.run(t, r)
			r.ping(0)
			e.checkNoStreams(t)
		})
	}
}

// TestRawConnectionErrors: what ends the connection, with GOAWAY and the
// error code (or by closing it, before HTTP/2 has begun).
func TestRawConnectionErrors(t *testing.T) {
	cases := []struct {
		name  string
		opt   Options
		run   func(t *testing.T, e *env) *rawClient // returns the client whose GOAWAY to expect, or nil
		codes []http2.ErrCode
	}{
		{name: "garbage instead of the preface", run: func(t *testing.T, e *env) *rawClient {
			r := dialRaw(t, e.addr)
			r.write([]byte("GET / HTTP/1.1\r\nHost: raw.test\r\n\r\n"))
			r.closed()
			return nil
		}},
		{name: "silence instead of the preface", opt: Options{HandshakeTimeout: 50 * time.Millisecond}, run: func(t *testing.T, e *env) *rawClient {
			r := dialRaw(t, e.addr)
			r.write([]byte("PRI * HTTP/2.0\r\n"))
			r.closed()
			return nil
		}},
		{name: "PING before SETTINGS", codes: []http2.ErrCode{http2.ErrCodeProtocol}, run: func(t *testing.T, e *env) *rawClient {
			r := dialRaw(t, e.addr)
			r.write([]byte(http2.ClientPreface))
			r.check(r.fr.WritePing(false, [8]byte{}))
			return r
		}},
		{name: "HEADERS on an even stream", codes: []http2.ErrCode{http2.ErrCodeProtocol}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.headers(2, true, call(unaryPath)...)
			return r
		}},
		{name: "HEADERS on a stream below the last", codes: []http2.ErrCode{http2.ErrCodeProtocol, http2.ErrCodeStreamClosed}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.headers(5, false, call(inputPath)...)
			r.headers(3, false, call(inputPath)...)
			return r
		}},
		{name: "DATA on a stream never opened", codes: []http2.ErrCode{http2.ErrCodeProtocol}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.data(7, true, []byte{0, 0, 0, 0, 0})
			return r
		}},
		{name: "DATA past the connection's window", codes: []http2.ErrCode{http2.ErrCodeFlowControl, http2.ErrCodeFrameSize}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.headers(1, false, call(inputPath)...)
			r.data(1, false, make([]byte, 70000)) // one frame
			return r
		}},
		{name: "DATA frame past the frame size", codes: []http2.ErrCode{http2.ErrCodeFrameSize}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.headers(1, false, call(inputPath)...)
			r.data(1, false, make([]byte, 20000)) // within the windows, past 16,384 bytes
			return r
		}},
		{name: "connection window overflow", codes: []http2.ErrCode{http2.ErrCodeFlowControl}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.check(r.fr.WriteWindowUpdate(0, 1<<31-1))
			return r
		}},
		{name: "initial window too large", codes: []http2.ErrCode{http2.ErrCodeFlowControl}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.check(r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31}))
			return r
		}},
		{name: "PUSH_PROMISE from the client", codes: []http2.ErrCode{http2.ErrCodeProtocol}, run: func(t *testing.T, e *env) *rawClient {
			r := startRaw(t, e.addr)
			r.headers(1, false, call(inputPath)...)
			r.check(r.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: r.block(":method", "GET"), EndHeaders: true}))
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newRawServer(t, tc.opt)
			if r := tc.run(t, e); r != nil {
				if code := r.goAway(); !containsCode(tc.codes, code) {
					t.Errorf("GOAWAY %v, want %v", code, tc.codes)
				}
			}
			if !eventually(func() bool { return e.openConns() == 0 }) {
				t.Errorf("the server still holds %d connections", e.openConns())
			}
			// the server serves on
			r := startRaw(t, e.addr)
			r.headers(1, false, call(unaryPath)...)
			r.data(1, true, lpm(t, simple([]byte("after"))))
			checkAnswer(t, r.response(1), []byte("after"))
		})
	}
}

func containsCode(cs []http2.ErrCode, c http2.ErrCode) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func TestRawPing(t *testing.T) {
	e, _ := newRawServer(t, Options{})
	r := startRaw(t, e.addr)
	for _, data := range [][8]byte{{}, {1, 2, 3, 4, 5, 6, 7, 8}, {0xff, 0, 0xff, 0, 'a', 'b', 'c', 'd'}} {
		r.check(r.fr.WritePing(false, data))
		f := r.await("PING ACK", func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok }).(*http2.PingFrame)
		if !f.IsAck() || f.Data != data {
			t.Errorf("PING % x answered by ack %v, % x", data, f.IsAck(), f.Data)
		}
	}
	// an ACK is not answered
	r.check(r.fr.WritePing(true, [8]byte{9}))
	r.ping(0)
}

// TestRawWindowUpdates: the server gives a window back once a quarter of
// it is owed, and never on a stream whose client has sent all it will.
func TestRawWindowUpdates(t *testing.T) {
	e, _ := newRawServer(t, Options{})
	r := startRaw(t, e.addr)
	body := bytes.Repeat([]byte("w"), 1000)
	var updates []*http2.WindowUpdateFrame
	answers := map[uint32]bool{}
	for id := uint32(1); id <= 19; id += 2 {
		r.headers(id, false, call(unaryPath)...)
		r.data(id, true, lpm(t, simple(body)))
	}
	// 10 calls of about 1 KB: a seventh of the 64 KiB connection window
	data := [8]byte{'w', 'u'}
	r.check(r.fr.WritePing(false, data))
	for pinged := false; len(answers) < 10 || !pinged; {
		f, err := r.fr.ReadFrame()
		r.check(err)
		switch f := f.(type) {
		case *http2.WindowUpdateFrame:
			updates = append(updates, f)
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				answers[f.StreamID] = true
			}
		case *http2.PingFrame:
			pinged = pinged || f.IsAck() && f.Data == data
		}
	}
	for _, u := range updates {
		t.Errorf("WINDOW_UPDATE of %d on stream %d: a unary call's window is never used again, and the connection's is owed 10 KB", u.Increment, u.StreamID)
	}

	// A message of three quarters of the stream's window, sent in 1 KB
	// frames on a client-streaming call: the server gives back what it
	// took as it goes, so the client is never left without window.
	r.headers(21, false, call(inputPath)...)
	m := lpm(t, simple(bytes.Repeat([]byte("x"), 3*defaultWindow/4)))
	for len(m) > 0 {
		n := min(len(m), 1000)
		r.data(21, false, m[:n])
		m = m[n:]
	}
	var stream, conn uint32
	r.await("the stream's window back", func(f http2.Frame) bool {
		if u, ok := f.(*http2.WindowUpdateFrame); ok {
			if u.StreamID == 21 {
				stream += u.Increment
			} else if u.StreamID == 0 {
				conn += u.Increment
			}
		}
		return stream >= defaultWindow/4 && conn >= defaultWindow/4
	})
}

// TestRawHeldFrames: the messages a handler holds go out as one run of
// DATA frames, several messages to a frame, none past the frame size.
func TestRawHeldFrames(t *testing.T) {
	sizes := []int{100, 200, 30, 9000, 12000, 1, 40}
	ts := &testServer{output: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
		h := holderOf(s)
		for i, n := range sizes {
			if err := h.Hold(encodedOut(t, n, i)); err != nil {
				return err
			}
		}
		return h.Flush()
	}}
	e := startTestServer(t, Options{}, ts)
	r := startRaw(t, e.addr)
	r.headers(1, false, call(outputPath)...)
	r.data(1, true, lpm(t, &testpb.StreamingOutputCallRequest{}))
	var frames []int
	var data []byte
	r.await("the end of the call", func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.DataFrame:
			frames = append(frames, len(f.Data()))
			data = append(data, f.Data()...)
		case *http2.MetaHeadersFrame:
			return f.StreamEnded()
		}
		return false
	})
	total := 0
	for i, n := range sizes {
		if len(data) < 5 {
			t.Fatalf("message %d missing", i)
		}
		m := int(binary.BigEndian.Uint32(data[1:5]))
		var resp testpb.StreamingOutputCallResponse
		if err := proto.Unmarshal(data[5:5+m], &resp); err != nil {
			t.Fatal(err)
		}
		checkBytes(t, fmt.Sprintf("message %d", i), resp.GetPayload().GetBody(), pattern(n, i))
		data = data[5+m:]
		total += 5 + m
	}
	if len(data) > 0 {
		t.Errorf("%d bytes after the messages", len(data))
	}
	// 21.6 KB of messages: two frames of 16 KiB at most
	if want := (total + 16383) / 16384; len(frames) != want {
		t.Errorf("DATA frames of %v bytes, want %d frames", frames, want)
	}
	for _, n := range frames {
		if n > 16384 {
			t.Errorf("a DATA frame of %d bytes, past the frame size", n)
		}
	}
}

// TestRawStreamErrors: what ends one call, the connection going on.
func TestRawStreamErrors(t *testing.T) {
	cases := []struct {
		name string
		opt  Options
		path string
		run  func(t *testing.T, r *rawClient, rs *rawServer)
	}{
		{name: "client RST_STREAM, client streaming", path: inputPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			r.data(1, false, lpm(t, &testpb.StreamingInputCallRequest{}))
			recv(t, "the handler to start", rs.started)
			r.check(r.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			if err := recv(t, "the handler's context to end", rs.ended); !errors.Is(err, context.Canceled) {
				t.Errorf("the handler's context ended with %v", err)
			}
		}},
		{name: "client RST_STREAM, bidi", path: duplexPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			recv(t, "the handler to start", rs.started)
			r.check(r.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			if err := recv(t, "the handler's context to end", rs.ended); !errors.Is(err, context.Canceled) {
				t.Errorf("the handler's context ended with %v", err)
			}
		}},
		{name: "client RST_STREAM, unary waiting for its message", path: unaryPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			r.data(1, false, []byte{0, 0, 0})
			r.check(r.fr.WriteRSTStream(1, http2.ErrCodeCancel))
		}},
		{name: "DATA past the stream's window", opt: Options{MaxRecvMsgSize: 100}, path: inputPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			recv(t, "the handler to start", rs.started)
			// the handler reads nothing and the message is past the bound:
			// the server gives back none of the window
			chunk := make([]byte, 16384)
			for range 5 {
				r.data(1, false, chunk)
			}
			rr := r.response(1)
			if !rr.reset || rr.rst != http2.ErrCodeFlowControl {
				t.Errorf("answer %+v, want RST_STREAM FLOW_CONTROL_ERROR", rr)
			}
			if err := recv(t, "the handler's context to end", rs.ended); err == nil {
				t.Error("the handler's context has no error")
			}
		}},
		{name: "stream window overflow", path: inputPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			recv(t, "the handler to start", rs.started)
			r.check(r.fr.WriteWindowUpdate(1, 1<<31-1))
			rr := r.response(1)
			if !rr.reset || rr.rst != http2.ErrCodeFlowControl {
				t.Errorf("answer %+v, want RST_STREAM FLOW_CONTROL_ERROR", rr)
			}
			if err := recv(t, "the handler's context to end", rs.ended); err == nil {
				t.Error("the handler's context has no error")
			}
		}},
		{name: "zero window update", path: inputPath, run: func(t *testing.T, r *rawClient, rs *rawServer) {
			recv(t, "the handler to start", rs.started)
			r.check(r.fr.WriteWindowUpdate(1, 0))
			rr := r.response(1)
			if !rr.reset || rr.rst != http2.ErrCodeProtocol {
				t.Errorf("answer %+v, want RST_STREAM PROTOCOL_ERROR", rr)
			}
			if err := recv(t, "the handler's context to end", rs.ended); err == nil {
				t.Error("the handler's context has no error")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, rs := newRawServer(t, tc.opt)
			r := startRaw(t, e.addr)
			r.headers(1, false, call(tc.path)...)
			tc.run(t, r, rs)
			e.checkNoStreams(t)
			// nothing more on the call ended, and the connection serves on
			for _, f := range r.ping(1) {
				switch f.(type) {
				case *http2.MetaHeadersFrame, *http2.DataFrame:
					t.Errorf("the server wrote %v on the call ended", f)
				}
			}
			r.headers(3, false, call(unaryPath)...)
			r.data(3, true, lpm(t, simple([]byte("next"))))
			checkAnswer(t, r.response(3), []byte("next"))
		})
	}
}

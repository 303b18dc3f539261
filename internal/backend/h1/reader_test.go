package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// testReader is a reader over src with a pool of its own.
func testReader(src io.Reader, size int) *reader {
	pool := &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
	return newReader(&connReader{}, src, pool, size)
}

// chunkedSource returns data in pieces of random sizes, as a socket would.
type chunkedSource struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunkedSource) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rnd.IntN(40))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestReaderMatchesBufio runs the same random operations on a reader and
// on a bufio.Reader over the same bytes, delivered in the same random
// pieces, and wants the same results.
func TestReaderMatchesBufio(t *testing.T) {
	for seed := range uint64(300) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		data := make([]byte, rnd.IntN(600))
		for i := range data {
			data[i] = "ab\n\r0"[rnd.IntN(5)]
		}
		size := 16 + rnd.IntN(64)
		got := testReader(&chunkedSource{data: data, rnd: rand.New(rand.NewPCG(seed, 2))}, size)
		want := bufio.NewReaderSize(&chunkedSource{data: data, rnd: rand.New(rand.NewPCG(seed, 2))}, size)
		for step := 0; step < 200; step++ {
			switch op := rnd.IntN(4); op {
			case 0:
				g, gerr := got.ReadSlice('\n')
				w, werr := want.ReadSlice('\n')
				if !bytes.Equal(g, w) || gerr != werr {
					t.Fatalf("seed %d step %d ReadSlice: %q %v, bufio %q %v", seed, step, g, gerr, w, werr)
				}
			case 1:
				n := 1 + rnd.IntN(size)
				g, gerr := got.Peek(n)
				w, werr := want.Peek(n)
				if !bytes.Equal(g, w) || (gerr == nil) != (werr == nil) {
					t.Fatalf("seed %d step %d Peek(%d): %q %v, bufio %q %v", seed, step, n, g, gerr, w, werr)
				}
				if d := rnd.IntN(len(g) + 1); d > 0 {
					got.Discard(d)
					want.Discard(d)
				}
			case 2:
				p := make([]byte, 1+rnd.IntN(2*size))
				q := make([]byte, len(p))
				// bufio may read fewer bytes straight into a large p; compare
				// the bytes, and let the other side catch up.
				gn, gerr := got.Read(p)
				wn, werr := io.ReadFull(want, q[:gn])
				if gn == 0 {
					wn, werr = want.Read(q)
				}
				if !bytes.Equal(p[:gn], q[:wn]) || (gerr == nil) != (werr == nil || werr == io.ErrUnexpectedEOF) {
					t.Fatalf("seed %d step %d Read: %q %v, bufio %q %v", seed, step, p[:gn], gerr, q[:wn], werr)
				}
			case 3:
				if got.Buffered() > size {
					t.Fatalf("seed %d: Buffered %d > size %d", seed, got.Buffered(), size)
				}
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	r := testReader(iotest.DataErrReader(io.MultiReader(bytes.NewReader([]byte("ab\ncd")), iotest.ErrReader(boom))), 16)
	if line, err := r.ReadSlice('\n'); string(line) != "ab\n" || err != nil {
		t.Fatalf("ReadSlice = %q, %v", line, err)
	}
	if line, err := r.ReadSlice('\n'); string(line) != "cd" || err != boom {
		t.Fatalf("ReadSlice at the error = %q, %v; want \"cd\", boom", line, err)
	}
	r = testReader(bytes.NewReader([]byte("0123456789abcdefXYZ\n")), 16)
	if line, err := r.ReadSlice('\n'); string(line) != "0123456789abcdef" || err != bufio.ErrBufferFull {
		t.Fatalf("long line = %q, %v; want the buffer and ErrBufferFull", line, err)
	}
	if p, err := r.Peek(17); err != bufio.ErrBufferFull || p != nil {
		t.Fatalf("Peek past the size = %q, %v", p, err)
	}
	r = testReader(iotest.OneByteReader(bytes.NewReader([]byte("x"))), 16)
	if p, err := r.Peek(2); string(p) != "x" || err != io.EOF {
		t.Fatalf("short Peek = %q, %v; want \"x\", EOF", p, err)
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// rawReader returns a 64-byte reader on the client end of a loopback TCP
// connection, its conn, and the server end.
func rawReader(t *testing.T) (*reader, *conn, net.Conn) {
	t.Helper()
	if !canReadRaw {
		t.Skip("no raw reads on this platform")
	}
	client, server := tcpPair(t)
	c := &conn{nc: client}
	c.rd.c = c
	r := testReader(client, 64)
	r.cr = &c.rd
	if r.raw == nil {
		t.Fatal("no raw conn on a *net.TCPConn")
	}
	return r, c, server
}

// TestReaderReleasesBufferWhileWaiting is the point of reader: on a TCP
// connection, a reader waiting for bytes holds no buffer, takes one when
// they arrive, and flushes before it waits.
func TestReaderReleasesBufferWhileWaiting(t *testing.T) {
	r, c, server := rawReader(t)
	// The reader flushes right before it waits: the flush reports whether
	// it still holds a buffer then.
	flushes := make(chan bool, 10)
	c.rd.flush = flushFunc(func() { flushes <- r.buf != nil })

	done := make(chan []byte, 1)
	go func() {
		line, err := r.ReadSlice('\n')
		if err != nil {
			t.Error(err)
		}
		done <- append([]byte(nil), line...)
	}()
	select {
	case held := <-flushes: // the reader found nothing and is about to wait
		if held {
			t.Fatal("a reader about to wait holds a buffer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no flush before waiting")
	}
	if _, err := server.Write([]byte("event one\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-done; string(got) != "event one\n" {
		t.Fatalf("line = %q", got)
	}
	if r.buf == nil {
		t.Fatal("the buffer the bytes were read into is gone before release")
	}
	if r.Buffered() != 0 {
		t.Fatalf("buffered %d", r.Buffered())
	}
	r.releaseIfEmpty()
	if r.buf != nil {
		t.Fatal("releaseIfEmpty kept the buffer")
	}

	// Wait again: while parked the reader must hold no buffer.
	go func() {
		p, err := r.Peek(3)
		if err != nil {
			t.Error(err)
		}
		done <- append([]byte(nil), p...)
	}()
	if held := <-flushes; held {
		t.Fatal("a reader about to wait again holds a buffer")
	}
	server.Write([]byte("xyz"))
	if got := <-done; string(got) != "xyz" {
		t.Fatalf("Peek = %q", got)
	}
}

type flushFunc func()

func (f flushFunc) Flush() { f() }

func TestReaderRawErrors(t *testing.T) {
	r, c, server := rawReader(t)
	client := c.nc

	client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Peek past the deadline: %v, want ErrDeadlineExceeded", err)
	}
	client.SetReadDeadline(time.Time{})

	// Large reads bypass the buffer.
	big := bytes.Repeat([]byte("z"), 200)
	server.Write(big)
	p := make([]byte, 256)
	n, err := io.ReadAtLeast(r, p, len(big))
	if err != nil || !bytes.Equal(p[:n], big) {
		t.Fatalf("big read: %d %v", n, err)
	}
	if r.buf != nil {
		t.Fatal("a read larger than the buffer took a buffer")
	}

	server.Close()
	if _, err := r.Peek(1); err != io.EOF {
		t.Fatalf("Peek after the peer closed: %v, want EOF", err)
	}
}

// closeOnlyConn is a net.Conn for bodies read from memory: only Close is
// ever called on it.
type closeOnlyConn struct{ net.Conn }

func (closeOnlyConn) Close() error { return nil }

// FuzzChunkedBody decodes a chunked body with Read and with WriteTo and
// wants both to agree with net/http's decoder: the same data when it
// accepts the body, an error when it refuses it.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5\r\nhello\r\n1;ext=1\r\n!\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
		"zz\r\nhello\r\n0\r\n\r\n",
		"2\r\nhello\r\n0\r\n\r\n",
		"5\r\nhel",
		"0\r\n\r\n",
		"ffffffffffffffff\r\n",
		// Lines longer than the reader's buffer: an extension, white space.
		"1;" + strings.Repeat("e", 300) + "\r\n!\r\n0\r\n\r\n",
		"1" + strings.Repeat(" ", 300) + "\r\n!\r\n0\r\n\r\n",
		"0;" + strings.Repeat("e", 300) + "\r\n\r\n",
		// Over net/http's line limit, and right at it.
		"1;" + strings.Repeat("e", 4093) + "\r\n!\r\n0\r\n\r\n",
		"1;" + strings.Repeat("e", 4092) + "\r\n!\r\n0\r\n\r\n",
		// Mostly framing: 20 chunks of one byte with 1 KB extensions.
		strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\n!\r\n", 20) + "0\r\n\r\n",
		strings.Repeat("1;"+strings.Repeat("e", 700)+"\r\n!\r\n", 20) + "0\r\n\r\n",
	} {
		f.Add(s, uint8(16))
	}
	f.Fuzz(func(t *testing.T, s string, size uint8) {
		br := bufio.NewReader(strings.NewReader(s))
		want, werr := io.ReadAll(httputil.NewChunkedReader(br))
		if werr == nil && !trailerEnds(br) {
			// net/http's decoder stops at the last chunk; the message
			// ends only after the trailer's empty line.
			werr = io.ErrUnexpectedEOF
		}
		for _, useWriteTo := range []bool{false, true} {
			c := &conn{nc: closeOnlyConn{}}
			c.rd.c = c
			c.br = testReader(strings.NewReader(s), 16+int(size))
			c.br.cr = &c.rd
			b := &body{c: c, ctx: context.Background(), mode: bodyChunked}
			var got bytes.Buffer
			var err error
			if useWriteTo {
				_, err = b.WriteTo(&got)
			} else {
				_, err = io.Copy(&got, struct{ io.Reader }{b}) // no WriteTo
			}
			if werr == nil && (err != nil || !bytes.Equal(got.Bytes(), want)) {
				t.Fatalf("WriteTo=%v: %q, %v; net/http %q", useWriteTo, got.Bytes(), err, want)
			}
			if werr != nil && err == nil && !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("WriteTo=%v accepted %q as %q; net/http refused it: %v", useWriteTo, s, got.Bytes(), werr)
			}
		}
	})
}

// trailerEnds reads trailer lines up to the empty line that ends them.
func trailerEnds(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\n" || line == "\r\n" {
			return true
		}
	}
}

// TestConcurrentStreamsShareBuffers runs many streams at once through one
// Transport with tiny read buffers, so that buffers go back to the pool and
// come out again all the time, while the upstream writes its events in
// pieces with pauses between them. Every body must arrive exactly: a buffer
// given back while still in use would mix one stream's bytes into another.
func TestConcurrentStreamsShareBuffers(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for {
			req, _, ok := readRequest(br)
			if !ok {
				return
			}
			seq := req.Header.Get("X-Seq")
			rnd := rand.New(rand.NewPCG(uint64(len(seq)), uint64(seq[len(seq)-1])))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			for _, ev := range streamEvents(seq) {
				chunk := fmt.Sprintf("%x\r\n%s\r\n", len(ev), ev)
				cut := rnd.IntN(len(chunk))
				c.Write([]byte(chunk[:cut]))
				if rnd.IntN(3) == 0 {
					time.Sleep(time.Duration(rnd.IntN(2000)) * time.Microsecond)
				}
				c.Write([]byte(chunk[cut:]))
			}
			io.WriteString(c, "0\r\n\r\n")
		}
	})
	tr := &Transport{ReadBufferSize: 64}
	t.Cleanup(tr.CloseIdleConnections)
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Go(func() {
			for i := range 8 {
				seq := fmt.Sprintf("g%d-r%d", g, i)
				// A mixed-up stream may never end: bound it.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := tr.Send(ctx, &Request{Method: "POST", Addr: srv.addr, Host: "up", Target: "/v1/chat/completions",
					Fields: []string{"X-Seq", seq}, Body: []byte(`{}`)})
				if err != nil {
					t.Error(err)
					return
				}
				var got bytes.Buffer
				if (g+i)%2 == 0 {
					_, err = resp.Body.(io.WriterTo).WriteTo(flushingBuffer{&got})
				} else {
					_, err = io.Copy(&got, struct{ io.Reader }{resp.Body})
				}
				resp.Body.Close()
				if want := strings.Join(streamEvents(seq), ""); err != nil || got.String() != want {
					t.Errorf("%s: %v\ngot  %q\nwant %q", seq, err, got.String(), want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// streamEvents are the SSE events the test upstream sends for seq.
func streamEvents(seq string) []string {
	evs := make([]string, 12)
	for j := range evs {
		evs[j] = fmt.Sprintf("data: {\"seq\":%q,\"n\":%d,\"pad\":%q}\n\n", seq, j, strings.Repeat(string(rune('a'+j)), 10*j))
	}
	return evs
}

// flushingBuffer is a bytes.Buffer with the Flush method WriteTo looks for.
type flushingBuffer struct{ *bytes.Buffer }

func (flushingBuffer) Flush() {}

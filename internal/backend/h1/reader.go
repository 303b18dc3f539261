package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"syscall"
)

// reader is a connection's read buffer: the part of bufio.Reader the client
// needs, with one difference that matters at scale. Its buffer comes from a
// pool when bytes are to be read and goes back whenever it is empty and the
// reader has to wait for the socket, so a connection waiting for its
// upstream holds no buffer. A stream parked between two events, and an idle
// keep-alive connection, cost no read buffer at all: with 10,000 open
// streams that is 40 MB.
//
// Waiting without a buffer needs the socket's file descriptor (a
// syscall.RawConn); on any other net.Conn (TLS, a test pipe) the reader
// keeps its buffer and reads through the conn as bufio would.
type reader struct {
	cr   *connReader
	src  io.Reader  // the connection, read through when raw is nil
	pool *sync.Pool // of *[]byte, each of the reader's size
	size int
	bp   *[]byte // the buffer while held
	buf  []byte  // *bp, or nil while released
	r, w int     // buf[r:w] is buffered data
	err  error   // read error, returned once the buffered data is consumed

	// The raw read: dst is where the next read goes (nil: the buffer's
	// free space), n and rerr its outcome.
	raw   syscall.RawConn
	rawFn func(fd uintptr) bool
	dst   []byte
	n     int
	rerr  error

	// The check that an idle connection has nothing to read (see quiet).
	probeFn  func(fd uintptr) bool
	probeBuf [1]byte
	silent   bool
}

func newReader(cr *connReader, src io.Reader, pool *sync.Pool, size int) *reader {
	b := &reader{cr: cr, src: src, pool: pool, size: size}
	if sc, ok := src.(syscall.Conn); ok && canReadRaw {
		if raw, err := sc.SyscallConn(); err == nil {
			b.raw = raw
			b.rawFn = b.readRaw
			b.probeFn = b.probe
		}
	}
	return b
}

// quiet reports whether the socket has nothing to read now: no byte, no
// end of stream, no error. It never waits; it needs raw.
func (b *reader) quiet() bool {
	b.silent = false
	if err := b.raw.Read(b.probeFn); err != nil {
		return false
	}
	return b.silent
}

// Buffered returns the number of bytes that can be read from the buffer.
func (b *reader) Buffered() int { return b.w - b.r }

// hold takes a buffer from the pool.
func (b *reader) hold() {
	b.bp = b.pool.Get().(*[]byte)
	b.buf = (*b.bp)[:b.size:b.size]
	b.r, b.w = 0, 0
}

// releaseIfEmpty gives an empty buffer back to the pool. Slices returned
// by Peek and ReadSlice are invalid from here on, as after any read.
func (b *reader) releaseIfEmpty() {
	if b.buf != nil && b.r == b.w && b.raw != nil {
		b.pool.Put(b.bp)
		b.bp, b.buf = nil, nil
		b.r, b.w = 0, 0
	}
}

// readErr returns the pending read error and clears it.
func (b *reader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fill reads once more into the buffer, after moving what is buffered to
// its start.
func (b *reader) fill() {
	if b.buf == nil {
		if b.raw == nil {
			b.hold()
		}
	} else if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.buf != nil && b.w == len(b.buf) {
		panic(errors.New("h1: fill on a full buffer")) // callers check
	}
	n, err := b.read(nil)
	b.w += n
	if err != nil {
		b.err = err
	}
}

// read reads once from the connection into dst or, when dst is nil, into
// the buffer's free space (taking a buffer if none is held).
func (b *reader) read(dst []byte) (int, error) {
	b.cr.beforeRead()
	if b.raw == nil {
		if b.cr.flush != nil {
			b.cr.flush.Flush()
		}
		if dst == nil {
			dst = b.buf[b.w:]
		}
		n, err := b.src.Read(dst)
		b.cr.got(n)
		return n, err
	}
	b.dst, b.n, b.rerr = dst, 0, nil
	if err := b.raw.Read(b.rawFn); err != nil {
		b.dst = nil
		return 0, err
	}
	b.dst = nil
	b.cr.got(b.n)
	return b.n, b.rerr
}

// Read reads up to len(p) bytes: from the buffer when it holds any, else
// with one read from the connection, straight into p when p is at least
// as large as the buffer.
func (b *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= b.size {
			b.releaseIfEmpty()
			n, err := b.read(p)
			return n, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// Peek returns the next n bytes without consuming them; n must not exceed
// the buffer size. With fewer than n bytes it returns them and the error.
func (b *reader) Peek(n int) ([]byte, error) {
	if n > b.size {
		return nil, bufio.ErrBufferFull
	}
	for b.w-b.r < n && b.err == nil {
		b.fill()
	}
	if avail := b.w - b.r; avail < n {
		err := b.readErr()
		if err == nil {
			err = bufio.ErrBufferFull
		}
		if b.buf == nil {
			return nil, err
		}
		return b.buf[b.r:b.w], err
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard skips the next n bytes, which must be buffered.
func (b *reader) Discard(n int) {
	if n > b.Buffered() {
		panic(errors.New("h1: discard past the buffered data"))
	}
	b.r += n
}

// ReadSlice reads until the first delim and returns a slice of the buffer
// holding the bytes up to and including it, valid until the next read. A
// buffer full without delim returns it with bufio.ErrBufferFull.
func (b *reader) ReadSlice(delim byte) ([]byte, error) {
	s := 0 // search start
	for {
		if b.buf != nil {
			if i := bytes.IndexByte(b.buf[b.r+s:b.w], delim); i >= 0 {
				line := b.buf[b.r : b.r+s+i+1]
				b.r += s + i + 1
				return line, nil
			}
		}
		if b.err != nil {
			var line []byte
			if b.buf != nil {
				line = b.buf[b.r:b.w]
			}
			b.r = b.w
			return line, b.readErr()
		}
		if b.Buffered() >= b.size {
			line := b.buf[b.r:b.w]
			b.r = b.w
			return line, bufio.ErrBufferFull
		}
		s = b.w - b.r
		b.fill()
	}
}

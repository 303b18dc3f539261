package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync"
	"syscall"
	"time"
)

// Phase names the time limit of a Request that expired.
type Phase uint8

// The limits of a Request, as named by TimeoutError.
const (
	PhaseDeadline Phase = iota + 1 // Request.Deadline
	PhaseHead                      // Request.HeadTimeout
	PhaseIdle                      // Request.IdleTimeout
)

// String names the phase as the Request field that set it.
func (p Phase) String() string {
	switch p {
	case PhaseDeadline:
		return "deadline"
	case PhaseHead:
		return "head timeout"
	case PhaseIdle:
		return "idle timeout"
	}
	return "unknown limit"
}

// TimeoutError means one of the request's time limits expired; the
// connection was closed, so the server sees the request abandoned.
type TimeoutError struct {
	Phase Phase
	Err   error
}

// Error names the limit.
func (e *TimeoutError) Error() string {
	return "h1: " + e.Phase.String() + " expired: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, as net.Error does for deadlines.
func (e *TimeoutError) Timeout() bool { return true }

// staleError marks a failure on a reused connection before any byte of the
// response arrived: the server most likely closed it while it was idle.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// ctxErr is the error of an exchange aborted because ctx is done.
func ctxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	cause := context.Cause(ctx)
	if cause != nil && cause != cerr {
		return fmt.Errorf("h1: request aborted: %w (%w)", cerr, cause)
	}
	return fmt.Errorf("h1: request aborted: %w", cerr)
}

// conn is one upstream connection. It is used by one exchange at a time;
// only abort may run concurrently (from a context.AfterFunc).
type conn struct {
	nc      net.Conn
	host    *hostConns
	br      *reader
	rd      connReader
	abort   func() // closes nc; made once so arming it per request is cheap
	reused  bool
	idleAt  time.Time
	rdl     time.Time // read deadline set on nc
	wdl     time.Time // write deadline set on nc
	scratch []byte    // response head bytes
}

func newConn(nc net.Conn, h *hostConns, bufs *sync.Pool, size int) *conn {
	c := &conn{nc: nc, host: h}
	c.rd.c = c
	c.br = newReader(&c.rd, nc, bufs, size)
	c.abort = func() { c.nc.Close() }
	return c
}

func (c *conn) close() { c.nc.Close() }

// usable reports whether an idle connection can carry another request: the
// server has not closed or reset it, nor sent anything nobody asked for,
// while it was idle. net/http learns this from the read goroutine each of
// its connections has; here one read that does not wait asks the socket.
// Where that is not possible (not a socket) the connection is taken on
// trust, and a failure before any answer is retried on a new connection.
func (c *conn) usable(now time.Time) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.br.raw == nil {
		return true
	}
	if !c.rdl.IsZero() && !now.Before(c.rdl) {
		c.setReadDeadline(time.Time{}) // the last exchange's: a read would fail at once
	}
	return c.br.quiet()
}

// setDeadline sets both deadlines, skipping the call when nothing changes.
func (c *conn) setDeadline(d time.Time) {
	if d.Equal(c.rdl) && d.Equal(c.wdl) {
		return
	}
	c.nc.SetDeadline(d)
	c.rdl, c.wdl = d, d
}

func (c *conn) setReadDeadline(d time.Time) {
	if !d.Equal(c.rdl) {
		c.nc.SetReadDeadline(d)
		c.rdl = d
	}
}

// connReader is the per-exchange state of the reads from the socket: it
// counts the bytes of the response and, in the body of a response with an
// idle timeout, moves the read deadline before each read from the socket
// (only then: reads served from the buffer cost nothing).
type connReader struct {
	c        *conn
	n        int64         // bytes read in this exchange
	idle     time.Duration // > 0: body phase with an idle timeout
	deadline time.Time     // the exchange's deadline, in the body phase
	// first, until the body's first byte has arrived, is the head
	// timeout's deadline: HeadTimeout bounds the wait for that byte too.
	first time.Time
	phase Phase // the limit the read deadline now stands for
	// flush, set during WriteTo to a writer that can flush, is called
	// before the body waits for the socket: what was written so far goes
	// out then, and data that arrived together goes out together.
	flush interface{ Flush() }
}

// beforeRead sets the read deadline for the next read from the socket.
func (r *connReader) beforeRead() {
	if r.idle <= 0 && r.first.IsZero() {
		return
	}
	d, ph := r.deadline, PhaseDeadline
	if r.idle > 0 {
		if i := time.Now().Add(r.idle); d.IsZero() || i.Before(d) {
			d, ph = i, PhaseIdle
		}
	}
	if !r.first.IsZero() && (d.IsZero() || r.first.Before(d)) {
		d, ph = r.first, PhaseHead
	}
	r.c.setReadDeadline(d)
	r.phase = ph
}

// got notes n bytes read from the socket: once the body has its first
// byte, the head timeout no longer applies. With no idle timeout the
// read deadline goes back to the exchange's.
func (r *connReader) got(n int) {
	r.n += int64(n)
	if n > 0 && !r.first.IsZero() {
		r.first = time.Time{}
		if r.idle <= 0 {
			r.phase = PhaseDeadline
			r.c.setReadDeadline(r.deadline)
		}
	}
}

// mapErr turns a socket error of the exchange into what the caller sees.
func (c *conn) mapErr(ctx context.Context, err error, phase Phase) error {
	if ctx.Err() != nil {
		return ctxErr(ctx, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &TimeoutError{Phase: phase, Err: err}
	}
	return err
}

// earlyAnswerWait bounds the wait for an answer the server sent before it
// stopped reading the request (see roundTrip). A server that answers early
// has sent it by the time our write fails; this is only for it to arrive.
const earlyAnswerWait = 100 * time.Millisecond

// peerStopped reports a write that failed because the server closed or
// reset the connection, which it may have done after answering. Other
// failures (a request body that could not be read, our own deadline) leave
// no answer to look for.
func peerStopped(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// roundTrip writes the request and reads the response head. On error the
// connection is closed; a *staleError says the request may be sent again.
func (c *conn) roundTrip(ctx context.Context, t *Transport, x *exchange, headDeadline time.Time, headPhase Phase) (*http.Response, error) {
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.abort)
	}
	c.rd.n, c.rd.idle, c.rd.first, c.rd.phase = 0, 0, time.Time{}, headPhase
	c.setDeadline(headDeadline)
	err := c.write(x)
	var resp *http.Response
	early := false // the answer came before the request was all written
	if err == nil {
		resp, err = c.readResponse(x.method)
	} else if ctx.Err() == nil && peerStopped(err) {
		// The server may have answered and stopped reading before it had
		// the whole request: a 413 for a body too large, a 401 before the
		// body. Its answer is worth more than our write error, so look
		// for it briefly; the connection closes after it.
		d := time.Now().Add(earlyAnswerWait)
		if !headDeadline.IsZero() && headDeadline.Before(d) {
			d = headDeadline
		}
		c.setReadDeadline(d)
		if r, rerr := c.readResponse(x.method); rerr == nil {
			resp, err, early = r, nil, true
		} // else no answer: report the write error
	}
	if err == nil {
		if headPhase == PhaseHead && !early {
			c.rd.first = headDeadline // see connReader.first
		}
		err = c.startBody(ctx, t, x, resp, stop, early)
	}
	if err != nil {
		if stop != nil {
			stop()
		}
		c.close()
		merr := c.mapErr(ctx, err, c.rd.phase)
		if c.reused && c.rd.n == 0 && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &staleError{err: merr}
		}
		return nil, merr
	}
	return resp, nil
}

// write sends the request: head and small body in one write, a large
// body with writev, a streamed body after the head.
func (c *conn) write(x *exchange) error {
	switch {
	case x.stream != nil:
		s := x.stream
		x.stream = nil
		defer s.Close()
		if _, err := c.nc.Write(x.head); err != nil {
			return err
		}
		if x.streamLen >= 0 {
			_, err := io.CopyN(c.nc, s, x.streamLen)
			return err
		}
		cw := httputil.NewChunkedWriter(c.nc)
		if _, err := io.Copy(cw, s); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := io.WriteString(c.nc, "\r\n")
		return err
	case x.body != nil:
		bufs := net.Buffers{x.head, x.body}
		_, err := bufs.WriteTo(c.nc)
		return err
	}
	_, err := c.nc.Write(x.head)
	return err
}

// readResponse reads response heads until a final (non-1xx) one.
func (c *conn) readResponse(method string) (*http.Response, error) {
	for {
		resp, err := readHead(c.br, &c.scratch)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("h1: protocol switch (101) is not supported")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // informational: wait for the final answer
		}
		return resp, nil
	}
}

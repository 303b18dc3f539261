//go:build unix

package h1

import (
	"io"
	"os"
	"syscall"
)

const canReadRaw = true

// readRaw is the syscall.RawConn read function: it reads what the socket
// has; when that is nothing yet it gives back an empty buffer, flushes
// what the body wrote so far, and lets the runtime wait for the socket.
func (b *reader) readRaw(fd uintptr) bool {
	dst := b.dst
	if dst == nil {
		if b.buf == nil {
			b.hold()
		}
		dst = b.buf[b.w:]
	}
	for {
		n, err := syscall.Read(int(fd), dst)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if b.dst == nil {
				b.releaseIfEmpty()
			}
			if b.cr.flush != nil {
				b.cr.flush.Flush()
			}
			return false
		case err != nil:
			b.n, b.rerr = 0, os.NewSyscallError("read", err)
		case n == 0:
			b.n, b.rerr = 0, io.EOF
		default:
			b.n, b.rerr = n, nil
		}
		return true
	}
}

// probe is the syscall.RawConn read function of quiet: one read that finds
// nothing (EAGAIN) means silence; a byte, the end of the stream or an error
// mean the connection cannot carry a request. It never asks to wait.
func (b *reader) probe(fd uintptr) bool {
	for {
		_, err := syscall.Read(int(fd), b.probeBuf[:])
		if err == syscall.EINTR {
			continue
		}
		b.silent = err == syscall.EAGAIN
		return true
	}
}

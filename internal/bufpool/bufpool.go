// Package bufpool lends byte buffers for the request path: request bodies,
// whole answers, stream copies. One pool for all, so a buffer a request
// gave back serves the next whatever it is for.
package bufpool

import (
	"io"
	"sync"
)

var pool sync.Pool // *[]byte

// maxKept is the largest buffer Put keeps: one huge request must not pin
// its memory.
const maxKept = 1 << 20

// Get returns an empty buffer of capacity at least n (4 KiB at least).
func Get(n int) *[]byte {
	if v := pool.Get(); v != nil {
		b := v.(*[]byte)
		if cap(*b) >= n {
			*b = (*b)[:0]
			return b
		}
		pool.Put(v)
	}
	b := make([]byte, 0, max(n, 4096))
	return &b
}

// Put gives a buffer back; very large ones are dropped.
func Put(b *[]byte) {
	if cap(*b) <= maxKept {
		pool.Put(b)
	}
}

// Fill reads into p until it is full (err nil) or the reader fails
// (io.EOF at the end of the body).
func Fill(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var m int
		m, err = r.Read(p[n:])
		n += m
	}
	return n, err
}

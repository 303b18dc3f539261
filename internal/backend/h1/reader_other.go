//go:build !unix

package h1

// Elsewhere the reader keeps its buffer and reads through the net.Conn.
const canReadRaw = false

func (b *reader) readRaw(fd uintptr) bool { panic("h1: no raw reads on this platform") }

func (b *reader) probe(fd uintptr) bool { panic("h1: no raw reads on this platform") }

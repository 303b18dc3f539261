package grpcserver

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// The frames the server writes, straight into the connection's buffer.
// All are called under c.wmu.

func (c *conn) frameHeader(length int, typ http2.FrameType, flags http2.Flags, id uint32) {
	var h [9]byte
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = byte(typ), byte(flags)
	binary.BigEndian.PutUint32(h[5:], id&(1<<31-1))
	c.put(h[:])
}

func (c *conn) put(b []byte) { c.out = append(c.out, b...) }

// writeHeaderBlock writes c.hbuf, the block hpack encoded, as HEADERS
// and as many CONTINUATIONs as the peer's frame size needs.
func (c *conn) writeHeaderBlock(id uint32, endStream bool) {
	block := c.hbuf.Bytes()
	c.fmu.Lock()
	maxFrame := c.maxFrame
	c.fmu.Unlock()
	typ := http2.FrameHeaders
	for first := true; first || len(block) > 0; first = false {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		var flags http2.Flags
		if first && endStream {
			flags |= http2.FlagHeadersEndStream
		}
		if len(block) == 0 {
			flags |= http2.FlagHeadersEndHeaders // the same bit as CONTINUATION's
		}
		c.frameHeader(len(frag), typ, flags, id)
		c.put(frag)
		typ = http2.FrameContinuation
	}
}

// writeDataParts writes n bytes of the parts, from offset off of their
// concatenation, as DATA frames of at most maxFrame bytes.
func (c *conn) writeDataParts(id uint32, parts [2][]byte, off, n, maxFrame int) {
	parts = dropFront(parts, off)
	for n > 0 {
		size := min(n, maxFrame)
		c.frameHeader(size, http2.FrameData, 0, id)
		left := size
		for _, p := range parts {
			k := min(len(p), left)
			c.put(p[:k])
			if left -= k; left == 0 {
				break
			}
		}
		parts = dropFront(parts, size)
		n -= size
	}
}

// dropFront is parts less their first n bytes.
func dropFront(parts [2][]byte, n int) [2][]byte {
	for i := range parts {
		k := min(n, len(parts[i]))
		parts[i] = parts[i][k:]
		n -= k
	}
	return parts
}

func (c *conn) writeSettings(s []http2.Setting) {
	c.frameHeader(6*len(s), http2.FrameSettings, 0, 0)
	for _, x := range s {
		var b [6]byte
		binary.BigEndian.PutUint16(b[:2], uint16(x.ID))
		binary.BigEndian.PutUint32(b[2:], x.Val)
		c.put(b[:])
	}
}

func (c *conn) writeSettingsAck() { c.frameHeader(0, http2.FrameSettings, http2.FlagSettingsAck, 0) }

func (c *conn) writeWindowUpdate(id, inc uint32) {
	c.frameHeader(4, http2.FrameWindowUpdate, 0, id)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], inc)
	c.put(b[:])
}

func (c *conn) writePing(data [8]byte) {
	c.frameHeader(8, http2.FramePing, http2.FlagPingAck, 0)
	c.put(data[:])
}

func (c *conn) writeRSTStream(id uint32, code http2.ErrCode) {
	c.frameHeader(4, http2.FrameRSTStream, 0, id)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	c.put(b[:])
}

func (c *conn) writeGoAway(last uint32, code http2.ErrCode) {
	c.frameHeader(8, http2.FrameGoAway, 0, 0)
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], last)
	binary.BigEndian.PutUint32(b[4:], uint32(code))
	c.put(b[:])
}

var codeTexts = func() [17]string {
	var t [17]string
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeText(c codes.Code) string {
	if int(c) < len(codeTexts) {
		return codeTexts[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// encodeGRPCMessage percent-encodes what grpc-message cannot carry as it
// is: bytes outside printable ASCII, and '%'.
func encodeGRPCMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if b := msg[i]; b < ' ' || b > '~' || b == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(msg)+16)
	for i := 0; i < len(msg); i++ {
		if b := msg[i]; b < ' ' || b > '~' || b == '%' {
			out = append(out, '%', hex[b>>4], hex[b&15])
		} else {
			out = append(out, b)
		}
	}
	return string(out)
}

func encodeBin(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

var timeoutUnits = map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
	'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}

// parseTimeout reads grpc-timeout: at most 8 digits and a unit.
func parseTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, errors.New("bad length")
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("bad number")
	}
	unit, ok := timeoutUnits[v[len(v)-1]]
	if !ok {
		return 0, errors.New("bad unit")
	}
	if n > int64(math.MaxInt64/unit) {
		return math.MaxInt64, nil
	}
	if n == 0 {
		return time.Nanosecond, nil // already past: the call ends at once
	}
	return time.Duration(n) * unit, nil
}

package bufpool

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestGetPut(t *testing.T) {
	b := Get(10 << 10)
	if len(*b) != 0 || cap(*b) < 10<<10 {
		t.Fatalf("Get(10 KiB): len %d cap %d", len(*b), cap(*b))
	}
	*b = append(*b, "used"...)
	Put(b)
	if c := Get(100); len(*c) != 0 || cap(*c) < 4096 {
		t.Errorf("a buffer came back dirty or small: len %d cap %d", len(*c), cap(*c))
	}
	huge := make([]byte, 0, 2*maxKept)
	Put(&huge) // dropped, not kept: nothing to see but no panic
}

func TestFill(t *testing.T) {
	p := make([]byte, 5)
	n, err := Fill(iotest.OneByteReader(strings.NewReader("abcdefg")), p)
	if n != 5 || err != nil || string(p) != "abcde" {
		t.Errorf("Fill of a longer body: %d %v %q", n, err, p)
	}
	n, err = Fill(strings.NewReader("ab"), make([]byte, 5))
	if n != 2 || err != io.EOF {
		t.Errorf("Fill of a shorter body: %d %v, want 2 and io.EOF", n, err)
	}
}

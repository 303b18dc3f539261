package grpcserver

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/metadata"
)

// A call's header metadata goes through the connection's HPACK encoder:
// what repeats is indexed once and costs a byte a call after that, while
// the value new on every call (the request id) is never indexed, so
// however many calls pass, it pushes nothing out of the table.
func TestMetadataIndexing(t *testing.T) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	dec := hpack.NewDecoder(4096, nil)
	var sizes []int
	for i := range 500 {
		buf.Reset()
		md := metadata.MD{
			"x-request-id":          {fmt.Sprintf("req-%028d", i)},
			"x-omnigate-model":      {"qwen3-omni-7b"},
			"x-omnigate-deployment": {"small-a"},
			"Custom-Upper":          {"v"},
			"blob-bin":              {string([]byte{0, 1, 2, byte(i)})},
		}
		writeMD(enc, md)
		sizes = append(sizes, buf.Len())
		fields, err := dec.DecodeFull(buf.Bytes())
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got := map[string]hpack.HeaderField{}
		for _, f := range fields {
			got[f.Name] = f
		}
		if f := got["x-request-id"]; f.Value != md["x-request-id"][0] || !f.Sensitive {
			t.Fatalf("call %d: x-request-id %+v, want %q never indexed", i, f, md["x-request-id"][0])
		}
		if f := got["blob-bin"]; f.Value != encodeBin([]byte(md["blob-bin"][0])) || !f.Sensitive {
			t.Fatalf("call %d: blob-bin %+v, want base64, never indexed", i, f)
		}
		if got["custom-upper"].Value != "v" || got["x-omnigate-model"].Value != "qwen3-omni-7b" || got["x-omnigate-deployment"].Value != "small-a" {
			t.Fatalf("call %d: fields %+v", i, fields)
		}
	}
	// After the first call, every call's block is about the same size: the
	// repeating fields stay indexed (a byte each), the two literals cost
	// what they cost (a byte more or less with their Huffman code). A
	// unique value indexed would evict the others every ~50 calls, and
	// each would come back as a literal of 10 bytes or more.
	for i := 2; i < len(sizes); i++ {
		if sizes[i] > sizes[1]+2 {
			t.Fatalf("call %d's block is %d bytes, call 1's %d: the repeating fields were evicted", i, sizes[i], sizes[1])
		}
	}
	if sizes[1] >= sizes[0] {
		t.Fatalf("block sizes %d then %d: nothing was indexed", sizes[0], sizes[1])
	}
}

// BenchmarkCallMetadata is a call's HPACK work: header (status, content
// type, the metadata the API sets) and OK trailer.
func BenchmarkCallMetadata(b *testing.B) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i*7919)
	}
	md := metadata.MD{"x-omnigate-model": {"qwen3-omni-7b"}, "x-omnigate-deployment": {"small-a"}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		md["x-request-id"] = ids[i%len(ids):][:1]
		buf.Reset()
		writeHead(enc)
		writeMD(enc, md)
		buf.Reset()
		enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	}
}

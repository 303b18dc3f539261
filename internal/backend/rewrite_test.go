package backend

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// splitReader returns its input in two reads, split at k.
type splitReader struct {
	parts [][]byte
}

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

// readSmall reads r to the end with a buffer of size n.
func readSmall(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		k, err := r.Read(buf)
		out = append(out, buf[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// piecesWriterTo is a splitReader with WriteTo, as the h1 body: each part
// is one Write, and before each part it "waits" and flushes the writer.
type piecesWriterTo struct {
	splitReader
	waits int
}

func (s *piecesWriterTo) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, part := range s.parts {
		if len(part) == 0 {
			continue
		}
		s.waits++
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
		m, err := w.Write(part)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	s.parts = nil
	return n, nil
}

// flushBuffer is a bytes.Buffer that counts Flush calls.
type flushBuffer struct {
	bytes.Buffer
	flushes int
}

func (b *flushBuffer) Flush() { b.flushes++ }

func TestModelRewriter(t *testing.T) {
	tests := []struct {
		name     string
		sse      bool
		in, want string
	}{
		{"json", false,
			`{"id":"x","object":"chat.completion","model":"Qwen/Qwen2.5-Omni-7B","choices":[]}`,
			`{"id":"x","object":"chat.completion","model":"qwen3-omni-7b","choices":[]}`},
		{"json nested model keys untouched", false,
			`{"choices":[{"model":"a","message":{"model":"b"}}],"meta":{"model":"c"},"model":"up"}`,
			`{"choices":[{"model":"a","message":{"model":"b"}}],"meta":{"model":"c"},"model":"qwen3-omni-7b"}`},
		{"json model in strings untouched", false,
			`{"content":"\"model\":\"x\"","k\"model":"y", "model" :  "u\"p\\" , "z":1}`,
			`{"content":"\"model\":\"x\"","k\"model":"y", "model" :  "qwen3-omni-7b" , "z":1}`},
		{"json models key is not model", false,
			`{"models":"a","mode":"b","model":"c"}`,
			`{"models":"a","mode":"b","model":"qwen3-omni-7b"}`},
		{"json escaped key is the same key", false,
			`{"mod\u0065l":"a","\u006D\u006f\u0064\u0065\u006c":"b","m\/odel":"c","model\u0000":"d","\"model":"e"}`,
			`{"mod\u0065l":"qwen3-omni-7b","\u006D\u006f\u0064\u0065\u006c":"qwen3-omni-7b","m\/odel":"c","model\u0000":"d","\"model":"e"}`},
		{"json null model left", false,
			`{"model":null,"x":"model"}`,
			`{"model":null,"x":"model"}`},
		{"json every model of a duplicate key", false,
			`{"model":"a","x":{"model":"n"},"model":"b" , "model":null,"model":"c"}`,
			`{"model":"qwen3-omni-7b","x":{"model":"n"},"model":"qwen3-omni-7b" , "model":null,"model":"qwen3-omni-7b"}`},
		{"json array top level", false,
			`[{"model":"a"}]`,
			`[{"model":"a"}]`},
		{"json pretty", false,
			"{\n  \"id\": \"x\",\n  \"model\": \"up\"\n}\n",
			"{\n  \"id\": \"x\",\n  \"model\": \"qwen3-omni-7b\"\n}\n"},
		{"sse", true,
			"data: {\"id\":\"1\",\"model\":\"up\",\"choices\":[{\"delta\":{\"content\":\"model\"}}]}\n\n" +
				"data:{\"model\":\"up\"}\r\n\r\n" +
				": comment \"model\":\"x\"\n" +
				"event: message\n" +
				"data: {\"usage\":{},\"model\":\"up\"}\n\n" +
				"data: [DONE]\n\n",
			"data: {\"id\":\"1\",\"model\":\"qwen3-omni-7b\",\"choices\":[{\"delta\":{\"content\":\"model\"}}]}\n\n" +
				"data:{\"model\":\"qwen3-omni-7b\"}\r\n\r\n" +
				": comment \"model\":\"x\"\n" +
				"event: message\n" +
				"data: {\"usage\":{},\"model\":\"qwen3-omni-7b\"}\n\n" +
				"data: [DONE]\n\n"},
		{"sse data-like lines", true,
			"dat: {\"model\":\"up\"}\nxdata: {\"model\":\"up\"}\ndata: {\"model\":\"up\"}\n\n",
			"dat: {\"model\":\"up\"}\nxdata: {\"model\":\"up\"}\ndata: {\"model\":\"qwen3-omni-7b\"}\n\n"},
		{"sse bare CR line ends", true,
			"data: {\"model\":\"up\"}\r\rdata: {\"id\":1,\"model\":\"up\"}\r\r: c\rdata: {\"model\":\"up\"}\r\r",
			"data: {\"model\":\"qwen3-omni-7b\"}\r\rdata: {\"id\":1,\"model\":\"qwen3-omni-7b\"}\r\r: c\rdata: {\"model\":\"qwen3-omni-7b\"}\r\r"},
		{"sse one event over several data lines", true,
			"data: {\"id\":\"1\",\ndata: \"model\":\ndata:\"up\",\nid: 7\ndata: \"choices\":[]}\n\n" +
				"data: {\"a\":1,\r\ndata: \"model\":\"up\"}\r\n\r\n" +
				"data: {\"a\":\rdata\rdata: 2, \"model\": \"up\"}\r\r" +
				"data: {\"model\":\"up\"}\n\n",
			"data: {\"id\":\"1\",\ndata: \"model\":\ndata:\"qwen3-omni-7b\",\nid: 7\ndata: \"choices\":[]}\n\n" +
				"data: {\"a\":1,\r\ndata: \"model\":\"qwen3-omni-7b\"}\r\n\r\n" +
				"data: {\"a\":\rdata\rdata: 2, \"model\": \"qwen3-omni-7b\"}\r\r" +
				"data: {\"model\":\"qwen3-omni-7b\"}\n\n"},
		{"sse events end at a blank line only", true,
			"data: {\"a\":{\n\ndata: \"model\":\"up\"}\n\n",
			"data: {\"a\":{\n\ndata: \"model\":\"up\"}\n\n"},
		{"sse a document per data line, as line readers take them", true,
			"data: {\"a\":1}\ndata: {\"model\":\"up\"}\ndata: [1]\ndata: {\"model\":\"up\"}\n\n",
			"data: {\"a\":1}\ndata: {\"model\":\"qwen3-omni-7b\"}\ndata: [1]\ndata: {\"model\":\"qwen3-omni-7b\"}\n\n"},
		{"sse duplicate model", true,
			"data: {\"model\":\"up\",\"model\":\"up\"}\n\n",
			"data: {\"model\":\"qwen3-omni-7b\",\"model\":\"qwen3-omni-7b\"}\n\n"},
		{"sse broken json resyncs at line end", true,
			"data: {\"model\":\"up\n\ndata: {\"model\":\"up\"}\n\n",
			"data: {\"model\":\"qwen3-omni-7b\"\n\ndata: {\"model\":\"qwen3-omni-7b\"}\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every split of the input into two reads, with output buffers
			// of 1, 3 and 4096 bytes.
			for k := 0; k <= len(tt.in); k++ {
				for _, bufSize := range []int{1, 3, 4096} {
					src := &splitReader{parts: [][]byte{[]byte(tt.in[:k]), []byte(tt.in[k:])}}
					rw := newModelRewriter(io.NopCloser(src), "qwen3-omni-7b", tt.sse)
					got, err := readSmall(rw, bufSize)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, string(got)); diff != "" {
						t.Fatalf("split at %d, buffer %d (-want +got):\n%s", k, bufSize, diff)
					}
				}
			}
			// The WriteTo path, with the body handing over every split, and
			// after a first Read of 3 bytes.
			for k := 0; k <= len(tt.in); k++ {
				for _, first := range []int{0, 3} {
					src := &piecesWriterTo{splitReader: splitReader{parts: [][]byte{[]byte(tt.in[:k]), []byte(tt.in[k:])}}}
					rw := newModelRewriter(io.NopCloser(src), "qwen3-omni-7b", tt.sse)
					var got flushBuffer
					if first > 0 {
						p := make([]byte, first)
						n, _ := rw.Read(p)
						got.Write(p[:n])
					}
					if _, err := rw.(io.WriterTo).WriteTo(&got); err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, got.String()); diff != "" {
						t.Fatalf("WriteTo, split at %d, first read %d (-want +got):\n%s", k, first, diff)
					}
					if got.flushes != src.waits {
						t.Fatalf("WriteTo: %d flushes for %d waits of the body", got.flushes, src.waits)
					}
				}
			}
			rw := newModelRewriter(io.NopCloser(iotest.OneByteReader(strings.NewReader(tt.in))), "qwen3-omni-7b", tt.sse)
			got, err := io.ReadAll(rw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Fatalf("one byte reads (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelRewriterPassesErrors(t *testing.T) {
	src := io.MultiReader(strings.NewReader(`data: {"model":"up"}`+"\n\n"), iotest.ErrReader(io.ErrUnexpectedEOF))
	rw := newModelRewriter(io.NopCloser(src), "pub", true)
	got, err := io.ReadAll(rw)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if want := "data: {\"model\":\"pub\"}\n\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func BenchmarkModelRewriterSSE(b *testing.B) {
	ev := []byte("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"Qwen/Qwen2.5-Omni-7B\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n\n")
	stream := bytes.Repeat(ev, 256)
	buf := make([]byte, 32<<10)
	src := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(stream)
		rw := newModelRewriter(io.NopCloser(src), "qwen3-omni-7b", true)
		for {
			if _, err := rw.Read(buf); err != nil {
				break
			}
		}
	}
}

// FuzzModelRewriter checks that read boundaries never change the output,
// and that what a client decodes never shows the upstream's name: a JSON
// object, or an SSE event whose data is one, comes out as valid JSON with
// every top-level "model" string the public name and nothing else changed.
func FuzzModelRewriter(f *testing.F) {
	for _, s := range []string{`{"model":"a","x":[1,{"model":"b"}]}`, `{"a":"\"","model":"\\"}`, "data: {\"model\":\"a\"}\n\n", `[]`} {
		f.Add([]byte(s), uint8(3), false)
	}
	// What the rewriter once let through.
	f.Add([]byte(`{"model":"a","model":"b"}`), uint8(5), false)
	f.Add([]byte(`{"mod\u0065l":"a","MODEL":"b"}`), uint8(9), false)
	f.Add([]byte("data: {\"model\":\"a\"}\r\rdata: {\"model\":\"a\"}\r\r"), uint8(4), true)
	f.Add([]byte("data: {\"id\":1,\ndata: \"model\":\"a\"}\n\n"), uint8(11), true)
	f.Add([]byte("data: {\"x\":1,\rdata:\"model\"\r\ndata::\"a\"}\r\n\r\n"), uint8(2), true)
	f.Add([]byte("data: {\"model\":\"a\",\"model\":\"a\"}\n\n"), uint8(7), true)
	f.Add([]byte("\xef\xbb\xbfdata: {\"model\":\"a\"}\n\n"), uint8(1), true)
	f.Fuzz(func(t *testing.T, in []byte, split uint8, sse bool) {
		whole, err := io.ReadAll(newModelRewriter(io.NopCloser(bytes.NewReader(in)), "pub<>", sse))
		if err != nil {
			t.Fatal(err)
		}
		k := int(split) % (len(in) + 1)
		src := &splitReader{parts: [][]byte{append([]byte(nil), in[:k]...), append([]byte(nil), in[k:]...)}}
		parts, err := readSmall(newModelRewriter(io.NopCloser(src), "pub<>", sse), 1+int(split)%7)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole, parts) {
			t.Fatalf("split at %d changed the output:\n%q\n%q", k, whole, parts)
		}
		pw := &piecesWriterTo{splitReader: splitReader{parts: [][]byte{append([]byte(nil), in[:k]...), append([]byte(nil), in[k:]...)}}}
		var viaWriteTo flushBuffer
		if _, err := newModelRewriter(io.NopCloser(pw), "pub<>", sse).(io.WriterTo).WriteTo(&viaWriteTo); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole, viaWriteTo.Bytes()) {
			t.Fatalf("WriteTo, split at %d, changed the output:\n%q\n%q", k, whole, viaWriteTo.Bytes())
		}
		if !sse {
			checkRewritten(t, in, whole)
			return
		}
		ins, outs := sseData(in), sseData(whole)
		if len(ins) != len(outs) {
			t.Fatalf("%d events in, %d out:\n%q\n%q", len(ins), len(outs), in, whole)
		}
		for i := range ins {
			checkRewritten(t, ins[i], outs[i])
		}
	})
}

// checkRewritten checks out is in rewritten, when in is a JSON object: out
// is valid JSON, its top-level "model" strings (in any case, as Go's
// encoding/json matches them) are "pub<>", and the rest is in's.
func checkRewritten(t *testing.T, in, out []byte) {
	t.Helper()
	inMembers, ok := topMembers(in)
	if !ok {
		return
	}
	outMembers, ok := topMembers(out)
	if !ok {
		t.Fatalf("output %q of the object %q is not a JSON object", out, in)
	}
	if len(inMembers) != len(outMembers) {
		t.Fatalf("%d members in, %d out: %q → %q", len(inMembers), len(outMembers), in, out)
	}
	for i, m := range inMembers {
		want := m
		if _, isString := m.value.(string); isString && strings.EqualFold(m.key, "model") {
			want.value = "pub<>"
		}
		if diff := cmp.Diff(want, outMembers[i], cmp.AllowUnexported(member{})); diff != "" {
			t.Fatalf("member %d of %q → %q (-want +got):\n%s", i, in, out, diff)
		}
	}
}

// member is one top-level member of an object, as a decoder reads it.
type member struct {
	key   string
	value any
}

// topMembers decodes the members of the JSON object doc, keeping
// duplicate keys; false when doc is not one.
func topMembers(doc []byte) ([]member, bool) {
	if !json.Valid(doc) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, member{tok.(string), v})
	}
	return ms, true
}

// sseData returns the data of each event of an SSE stream, read as the
// spec says a client reads it: a leading byte order mark skipped, lines
// ending in CRLF, LF or CR, "data" fields joined with LF, a blank line
// dispatching.
func sseData(stream []byte) [][]byte {
	stream = bytes.TrimPrefix(stream, []byte("\xef\xbb\xbf"))
	var events [][]byte
	var data []byte
	has := false
	for {
		end := bytes.IndexAny(stream, "\r\n")
		if end < 0 {
			break // an unterminated last line is never dispatched
		}
		line := stream[:end]
		crlf := stream[end] == '\r' && end+1 < len(stream) && stream[end+1] == '\n'
		stream = stream[end+1:]
		if crlf {
			stream = stream[1:]
		}
		if len(line) == 0 {
			if has {
				events = append(events, bytes.TrimSuffix(data, []byte("\n")))
			}
			data, has = nil, false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		if string(field) == "data" {
			data = append(append(data, value...), '\n')
			has = true
		}
	}
	return events
}

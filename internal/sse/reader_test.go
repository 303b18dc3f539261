package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

type ev struct {
	Type, Data, ID string
	HasType, Done  bool
}

func readAll(t testing.TB, r *Reader) ([]ev, error) {
	t.Helper()
	var out []ev
	for {
		e, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		out = append(out, ev{Type: string(e.Type), HasType: e.Type != nil, Data: string(e.Data), ID: string(e.ID), Done: e.Done()})
	}
}

func TestReader(t *testing.T) {
	big := strings.Repeat("A", 200<<10) // larger than the bufio buffer
	tests := []struct {
		name    string
		in      string
		want    []ev
		wantErr error
	}{
		{"empty", "", nil, nil},
		{"one event", "data: {\"a\":1}\n\n", []ev{{Data: `{"a":1}`}}, nil},
		{"no space after colon", "data:{\"a\":1}\n\n", []ev{{Data: `{"a":1}`}}, nil},
		{"only one space stripped", "data:  x\n\n", []ev{{Data: " x"}}, nil},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []ev{{Data: "a"}, {Data: "b"}}, nil},
		{"multi-line data", "data: a\ndata: b\ndata:\n\n", []ev{{Data: "a\nb\n"}}, nil},
		{"comments skipped", ": keep-alive\n\n: x\ndata: a\n\n", []ev{{Data: "a"}}, nil},
		{"event type", "event: error\ndata: {}\n\n", []ev{{Type: "error", HasType: true, Data: "{}"}}, nil},
		{"event type alone", "event: ping\n\n", []ev{{Type: "ping", HasType: true}}, nil},
		{"type does not leak", "event: x\ndata: 1\n\ndata: 2\n\n", []ev{{Type: "x", HasType: true, Data: "1"}, {Data: "2"}}, nil},
		{"id", "id: 7\ndata: a\n\n", []ev{{ID: "7", Data: "a"}}, nil},
		{"empty data dispatches", "data:\n\n", []ev{{Data: ""}}, nil},
		{"blank lines only", "\n\n\r\n", nil, nil},
		{"field without colon", "data\n\n", []ev{{Data: ""}}, nil},
		{"unknown fields ignored", "retry: 10\nfoo: bar\ndata: a\n\n", []ev{{Data: "a"}}, nil},
		{"done", "data: {}\n\ndata: [DONE]\n\n", []ev{{Data: "{}"}, {Data: "[DONE]", Done: true}}, nil},
		{"bom", "\xef\xbb\xbfdata: a\n\n", []ev{{Data: "a"}}, nil},
		{"missing final blank line", "data: a\n", []ev{{Data: "a"}}, nil},
		{"cut mid line", "data: a\n\ndata: {\"b", []ev{{Data: "a"}}, io.ErrUnexpectedEOF},
		{"long line", "data: " + big + "\n\ndata: b\n\n", []ev{{Data: big}, {Data: "b"}}, nil},
		{"long line crlf", "data: " + big + "\r\n\r\n", []ev{{Data: big}}, nil},
	}
	for _, tt := range tests {
		for _, split := range []string{"whole", "one byte"} {
			t.Run(tt.name+"/"+split, func(t *testing.T) {
				var src io.Reader = strings.NewReader(tt.in)
				if split == "one byte" {
					src = iotest.OneByteReader(src)
				}
				got, err := readAll(t, NewReader(src))
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestReaderMaxEventSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"one long line", "data: " + strings.Repeat("x", 100<<10) + "\n\n"},
		{"many short lines", strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", 100) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			r.SetMaxEventSize(64 << 10)
			if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("err = %v, want ErrEventTooLarge", err)
			}
		})
	}
}

func TestReaderReset(t *testing.T) {
	r := NewReader(strings.NewReader("event: x\ndata: partial"))
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	r.Reset(strings.NewReader("data: fresh\n\n"))
	got, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ev{{Data: "fresh"}}, got); diff != "" {
		t.Errorf("after Reset (-want +got):\n%s", diff)
	}
}

func TestReaderNoAllocs(t *testing.T) {
	stream := bytes.Repeat([]byte("data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"), 50)
	src := bytes.NewReader(stream)
	r := NewReader(src)
	allocs := testing.AllocsPerRun(20, func() {
		src.Reset(stream)
		r.Reset(src)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("allocs per stream = %v, want 0", allocs)
	}
}

// FuzzReader checks that any input reads without panic, that every event's
// data is made only of data-line content, and that splitting the input into
// single bytes does not change the result.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "data:a\r\ndata:b\r\n\r\n", ": c\nevent: e\ndata: [DONE]\n\n", "data: x", "\xef\xbb\xbfid: 1\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		r.SetMaxEventSize(1 << 10)
		whole, errWhole := readAll(t, r)
		one, errOne := readAll(t, newOneByteReader(in))
		if !errors.Is(errOne, errWhole) {
			t.Fatalf("errors differ: whole %v, one byte %v", errWhole, errOne)
		}
		if diff := cmp.Diff(whole, one); diff != "" {
			t.Fatalf("split changed events (-whole +one):\n%s", diff)
		}
		for _, e := range whole {
			if len(e.Data) > len(in) {
				t.Fatalf("data longer than input: %q", e.Data)
			}
		}
	})
}

func newOneByteReader(in []byte) *Reader {
	r := NewReader(iotest.OneByteReader(bytes.NewReader(in)))
	r.SetMaxEventSize(1 << 10)
	return r
}

func BenchmarkSSEReader(b *testing.B) {
	for _, bc := range []struct {
		name  string
		event string
	}{
		{"text-delta", "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n\n"},
		{"audio-256KiB", "data: {\"choices\":[{\"delta\":{\"audio\":{\"data\":\"" + strings.Repeat("QUJD", 64<<10) + "\"}}}]}\n\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stream := bytes.Repeat([]byte(bc.event), 64)
			src := bytes.NewReader(stream)
			r := NewReader(src)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(stream)
				r.Reset(src)
				for {
					if _, err := r.Next(); err != nil {
						break
					}
				}
			}
		})
	}
}

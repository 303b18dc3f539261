package grpcapi

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/jsonscan"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// chunkEvents are stream events of every shape: the writer must say of
// each what the reader reads.
var chunkEvents = []string{
	`{"id":"c1","object":"chat.completion.chunk","created":1733000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel\nlo \"x\" \u00e9\ud83d\ude00"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c1","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}},{"index":-1,"function":{}}]}}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"audio":{"id":"a","data":"AAAA","expires_at":1733003600,"transcript":"x"}}}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"audio":{}},"logprobs":{}}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`,
	`{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":2,"x":1}}}`,
	`{"id":"c1","choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97,-1,300],"top_logprobs":[{"token":"a","logprob":-0.5,"bytes":[97]},{"token":"b","logprob":0,"bytes":null}]},null],"refusal":null}}]}`,
	`{"id":"c1","choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":null}]}}]}`,
	`{"id":null,"object":7,"created":"x","model":[1],"choices":{"0":1},"usage":"none","x":{"y":[{"z":1}]}}`,
	`{"created":1.7e9,"choices":[{"index":3000000000,"delta":null},null,7]}`,
	`{"choices":[{"delta":{"content":"a","reasoning_content":"think","refusal":""},"finish_reason":""}],"usage":{},"system_fingerprint":"fp","service_tier":"default"}`,
	`{"choices":[{"delta":{"content":"first"},"delta":{"role":"assistant"}}],"usage":{"prompt_tokens":1},"usage":{"total_tokens":2},"usage":null}`,
	`{"id":"c1","choices":[{"delta":{"content":"` + strings.Repeat("long text ", 20) + `"}}]}`,
	`{"id":"c1","choices":[{"delta":{"content":"` + strings.Repeat("x", 20000) + `"}}]}`,
	`{"id":"c1","choices":[{"delta":{"content":"lone \ud800 surrogate"}}]}`,
	`{}`,
}

// nanEqual compares floats with NaN equal to NaN (a null logprob).
var nanEqual = cmp.Comparer(func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) })

// TestChunkWriter: every event written as wire format reads back as the
// message the reader makes of it.
func TestChunkWriter(t *testing.T) {
	var cr chunkReader
	var cw chunkWriter
	for i, ev := range chunkEvents {
		want, err := cr.read([]byte(ev))
		if err != nil {
			t.Fatalf("event %d: reader: %v", i, err)
		}
		b, err := cw.write([]byte(ev))
		if err != nil {
			t.Fatalf("event %d: writer: %v", i, err)
		}
		got := new(pb.ChatCompletionChunk)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("event %d: the wire does not parse: %v", i, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(), nanEqual); diff != "" {
			t.Errorf("event %d (-reader +writer):\n%s", i, diff)
		}
	}
	for _, bad := range []string{`{"id":"x"`, `[]x`, `{"id":"x"} {}`, ``, `{"choices":[{"delta":{"content":"a}}]}`, "{\"id\":\"bad \xff\"}"} {
		if _, err := cw.write([]byte(bad)); err == nil {
			t.Errorf("write(%q) took it", bad)
		}
	}
}

// duplicateKeys reports whether an object of data has a key twice: a key
// sent twice with a zero last is where the two part (the reader keeps the
// zero, the wire cannot say a zero after a value), as JSON decoders part
// on such input anyway.
func duplicateKeys(data []byte) bool {
	d := jsonscan.NewDecoder(data)
	dup := false
	var value func() error
	value = func() error {
		k, err := d.Peek()
		if err != nil {
			return err
		}
		switch k {
		case jsonscan.Object:
			seen := map[string]bool{}
			return d.Object(func(key []byte) error {
				dup = dup || seen[string(key)]
				seen[string(key)] = true
				return value()
			})
		case jsonscan.Array:
			return d.Array(func(int) error { return value() })
		}
		_, err = d.Skip()
		return err
	}
	value()
	return dup
}

// FuzzChunkWriter: whatever the reader reads, the writer writes the same
// (an input with a key twice aside).
func FuzzChunkWriter(f *testing.F) {
	for _, ev := range chunkEvents {
		f.Add([]byte(ev))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cr chunkReader
		var cw chunkWriter
		want, rerr := cr.read(data)
		b, werr := cw.write(data)
		if (rerr == nil) != (werr == nil) {
			t.Fatalf("reader %v, writer %v", rerr, werr)
		}
		if rerr != nil || duplicateKeys(data) {
			return
		}
		got := new(pb.ChatCompletionChunk)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("the wire does not parse: %v", err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(), nanEqual); diff != "" {
			t.Errorf("(-reader +writer):\n%s", diff)
		}
	})
}

// FuzzChunkWriterStream: a stream's writer writes an event as a writer
// of its own would, whatever event came before it (the writer reuses the
// wire of a head the two share).
func FuzzChunkWriterStream(f *testing.F) {
	for i, a := range chunkEvents {
		f.Add([]byte(a), []byte(chunkEvents[(i+1)%len(chunkEvents)]))
		f.Add([]byte(a), []byte(a))
		if i := strings.Index(a, `"choices"`); i > 0 {
			f.Add([]byte(a), []byte(a[:i]+`"choices":[{"index":1,"delta":{"content":"x"}}],"usage":null}`))
			f.Add([]byte(a), []byte(a[:i]+`"choices":7}`))
			f.Add([]byte(a), []byte(a[:i]+`"choices"`))
			// the shapes delta writes, and some it leaves to the decoder
			for _, c := range []string{
				`[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}]}`,
				`[{"index":12,"delta":{"content":"é\xff"},"finish_reason":null}]}`,
				`[{"index":0,"delta":{"content":""},"logprobs":null}]}`,
				`[{"index":0,"delta":{"content":"a\"b"}}]}`,
				`[{"index":012,"delta":{"content":"a"}}]}`,
				`[{"index":9999999999,"delta":{"content":"a"}}]}`,
				`[{"index":0,"delta":{"content":"a"},"finish_reason":null,"logprobs":null}]}`,
				`[{"index":0,"delta":{"content":"a"}}],"usage":null}`,
			} {
				f.Add([]byte(a), []byte(a[:i]+`"choices":`+c))
			}
		}
	}
	f.Fuzz(func(t *testing.T, first, data []byte) {
		var stream, alone chunkWriter
		stream.write(first)
		got, gerr := stream.write(data)
		want, werr := alone.write(data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("after %q: %v, alone: %v", first, gerr, werr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("after %q:\n got %x\nwant %x", first, got, want)
		}
	})
}

// chatAnswers are whole answers of every shape, for writeChat.
var chatAnswers = []string{
	chatAnswer,
	benchChat,
	`{"id":null,"created":null,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":7,"created":"soon","model":["m"],"choices":{"0":1},"usage":"none"}`,
	`{"created":1.7e9,"choices":[{"message":{"content":"` + strings.Repeat("é", 300) + `"},"delta":{"content":"no"}}]}`,
	`{}`,
}

// TestChatWriter: a whole answer written as wire format reads back as the
// message decodeChat makes of it.
func TestChatWriter(t *testing.T) {
	for i, a := range chatAnswers {
		want := new(pb.ChatCompletionResponse)
		if err := decodeChat([]byte(a), want); err != nil {
			t.Fatalf("answer %d: decodeChat: %v", i, err)
		}
		b, err := writeChat(nil, []byte(a))
		if err != nil {
			t.Fatalf("answer %d: writeChat: %v", i, err)
		}
		got := new(pb.ChatCompletionResponse)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("answer %d: the wire does not parse: %v", i, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(), nanEqual); diff != "" {
			t.Errorf("answer %d (-decodeChat +writeChat):\n%s", i, diff)
		}
	}
}

// FuzzChatWriter: whatever decodeChat reads, writeChat writes the same
// (an input with a key twice aside).
func FuzzChatWriter(f *testing.F) {
	for _, a := range chatAnswers {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := new(pb.ChatCompletionResponse)
		derr := decodeChat(data, want)
		b, werr := writeChat(nil, data)
		if (derr == nil) != (werr == nil) {
			t.Fatalf("decodeChat %v, writeChat %v", derr, werr)
		}
		if derr != nil || duplicateKeys(data) {
			return
		}
		got := new(pb.ChatCompletionResponse)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("the wire does not parse: %v", err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(), nanEqual); diff != "" {
			t.Errorf("(-decodeChat +writeChat):\n%s", diff)
		}
	})
}

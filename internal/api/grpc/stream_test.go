package grpcapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/omnigate/omnigate/internal/grpcserver"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// sent is a server stream that keeps copies of what it is sent.
type sent struct {
	grpc.ServerStream // unused: only Send is called
	msgs              []*pb.ChatCompletionChunk
	fail              error
}

func (s *sent) Send(c *pb.ChatCompletionChunk) error {
	if s.fail != nil {
		return s.fail
	}
	s.msgs = append(s.msgs, proto.Clone(c).(*pb.ChatCompletionChunk))
	return nil
}

// SendMsg takes the chunks the sink sends already encoded.
func (s *sent) SendMsg(m any) error {
	c := new(pb.ChatCompletionChunk)
	if err := proto.Unmarshal(m.(grpcserver.Encoded), c); err != nil {
		return err
	}
	return s.Send(c)
}

func chunk(content string) *pb.ChatCompletionChunk {
	return &pb.ChatCompletionChunk{Id: "c", Choices: []*pb.ChunkChoice{{Delta: &pb.AssistantMessage{Content: proto.String(content)}}}}
}

// TestChunkSink: the events of a stream become one message each however
// the stream is cut into pieces; an error event, or an event that is not
// a chunk, ends the sending with its error.
func TestChunkSink(t *testing.T) {
	tests := []struct {
		name, stream string
		want         []*pb.ChatCompletionChunk
		failed       string // the failure's code, or its message
	}{
		{"events", "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n",
			[]*pb.ChatCompletionChunk{chunk("a"), chunk("b")}, ""},
		{"CRLF, comments, ids", ": ping\r\nid: 1\r\ndata:{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n",
			[]*pb.ChatCompletionChunk{chunk("a")}, ""},
		{"data on two lines", "data: {\"id\":\"c\",\ndata: \"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
			[]*pb.ChatCompletionChunk{chunk("a")}, ""},
		{"last event without its blank line", "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n",
			[]*pb.ChatCompletionChunk{chunk("a")}, ""},
		{"error event", "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"code\":503}}\n\ndata: {\"id\":\"c\"}\n\n",
			[]*pb.ChatCompletionChunk{chunk("a")}, "boom"},
		{"event: error", "event: error\ndata: {\"message\":\"x\"}\n\n", nil, "The upstream failed mid-stream (HTTP 502 Bad Gateway)."},
		{"not a chunk", "data: {\"id\":\n\n", nil, "upstream_invalid_response"},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 7, len(tt.stream)} {
			t.Run(tt.name, func(t *testing.T) {
				st := &sent{}
				k := &chunkSink{stream: st}
				for p := tt.stream; len(p) > 0; {
					n := min(size, len(p))
					if m, err := k.Write([]byte(p[:n])); err != nil || m != n {
						t.Fatalf("Write: %d, %v", m, err)
					}
					p = p[n:]
				}
				k.finish()
				if diff := cmp.Diff(tt.want, st.msgs, protocmp.Transform()); diff != "" {
					t.Errorf("pieces of %d: messages (-want +got):\n%s", size, diff)
				}
				got := ""
				if k.failed != nil {
					got = k.failed.Code
					if got == "" {
						got = k.failed.Message
					}
				}
				if got != tt.failed {
					t.Errorf("pieces of %d: failure %q, want %q", size, got, tt.failed)
				}
			})
		}
	}
}

// TestChunkSinkSendFails: a send that fails is the client's leaving.
func TestChunkSinkSendFails(t *testing.T) {
	gone := errors.New("gone")
	k := &chunkSink{stream: &sent{fail: gone}}
	_, err := k.Write([]byte(strings.Repeat("data: {\"id\":\"c\"}\n\n", 2)))
	if !errors.Is(err, gone) || !errors.Is(k.sendErr, gone) {
		t.Errorf("Write: %v, sendErr %v", err, k.sendErr)
	}
}

// TestChunkSinkReused: a sink given back and taken again for another
// stream writes that stream's chunks alone, whether its events start as
// the last stream's did or not.
func TestChunkSinkReused(t *testing.T) {
	ev := func(id, content string) string {
		return `data: {"id":"` + id + `","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
	}
	full := func(id, content string) *pb.ChatCompletionChunk {
		return &pb.ChatCompletionChunk{Id: id, Object: "chat.completion.chunk", Created: 1, Model: "m",
			Choices: []*pb.ChunkChoice{{Delta: &pb.AssistantMessage{Content: proto.String(content)}}}}
	}
	bare := chunk("7")
	bare.Id = "b"
	streams := []struct {
		body string
		want []*pb.ChatCompletionChunk
	}{
		{ev("a", "1") + ev("a", "2"), []*pb.ChatCompletionChunk{full("a", "1"), full("a", "2")}},
		// the same head as the last stream's
		{ev("a", "3") + ev("a", "4") + "data: [DONE]\n\n", []*pb.ChatCompletionChunk{full("a", "3"), full("a", "4")}},
		{ev("b", "5") + ev("b", "6"), []*pb.ChatCompletionChunk{full("b", "5"), full("b", "6")}},
		{"data: {\"id\":\"b\",\"choices\":[{\"delta\":{\"content\":\"7\"}}]}\n\n", []*pb.ChatCompletionChunk{bare}},
	}
	for i, s := range streams {
		st := &sent{}
		k := newChunkSink(st)
		if _, err := k.Write([]byte(s.body)); err != nil {
			t.Fatal(err)
		}
		k.finish()
		k.free()
		if diff := cmp.Diff(s.want, st.msgs, protocmp.Transform()); diff != "" {
			t.Errorf("stream %d: messages (-want +got):\n%s", i, diff)
		}
	}
}

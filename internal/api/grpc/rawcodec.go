package grpcapi

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec rawCodec wraps
	"google.golang.org/grpc/mem"
)

// rawMessage is a message already in protobuf wire format (a stream chunk
// written straight from the engine's JSON, wire_chunk.go), in a buffer its
// writer reuses: the codec sends a copy of its bytes.
type rawMessage []byte

// ownedMessage is a message in wire format whose bytes are the codec's to
// send as they are (a whole answer's, written for it alone).
type ownedMessage []byte

// rawCodec is gRPC's proto codec that also sends rawMessages. It is the
// server's only codec (grpc.ForceServerCodecV2): every other message, in
// and out, goes through the proto codec as it would without it.
type rawCodec struct {
	proto encoding.CodecV2
}

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2("proto")} }

// Marshal sends a rawMessage's bytes, copied (the transport writes them
// after SendMsg returns, and the caller reuses its buffer); anything else
// as the proto codec marshals it.
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case rawMessage:
		return mem.BufferSlice{mem.Copy(m, mem.DefaultBufferPool())}, nil
	case ownedMessage:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	}
	return c.proto.Marshal(v)
}

// Unmarshal is the proto codec's.
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Name is the proto codec's: the content subtype is unchanged.
func (c rawCodec) Name() string { return c.proto.Name() }

var _ encoding.CodecV2 = rawCodec{}

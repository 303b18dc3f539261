package grpcapi

import (
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// chunkReader reads the events of one stream into one reused message, as
// the reader reads a whole answer: what chunkWriter writes must read back
// as this (wire_test.go), and the benchmarks set the two side by side.
type chunkReader struct {
	r     reader
	chunk pb.ChatCompletionChunk
}

// read reads one chat.completion.chunk event's data into cr.chunk.
func (cr *chunkReader) read(data []byte) (*pb.ChatCompletionChunk, error) {
	r, c := &cr.r, &cr.chunk
	r.reset(data)
	id, object, model, fp := c.Id, c.Object, c.Model, c.SystemFingerprint
	c.Reset()
	err := r.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			c.Id, err = r.same(id)
		case "object":
			c.Object, err = r.same(object)
		case "created":
			c.Created, err = r.integer()
		case "model":
			c.Model, err = r.same(model)
		case "choices":
			err = r.array(func(int) error {
				ch := new(pb.ChunkChoice)
				c.Choices = append(c.Choices, ch)
				return r.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "index":
						ch.Index, err = r.int32()
					case "delta":
						if ch.Delta == nil {
							ch.Delta = new(pb.AssistantMessage)
						}
						err = r.message(ch.Delta)
					case "logprobs":
						ch.Logprobs, err = r.logprobs(ch.Logprobs)
					case "finish_reason":
						ch.FinishReason, err = r.str()
					}
					return err
				})
			})
		case "usage":
			c.Usage, err = r.usage(c.Usage)
		case "system_fingerprint":
			c.SystemFingerprint, err = r.same(fp)
		case "service_tier":
			c.ServiceTier, err = r.str()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, r.end()
}

package grpcapi

import (
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// decodeChat reads a chat.completion answer into out.
func decodeChat(data []byte, out *pb.ChatCompletionResponse) error {
	var r reader
	r.reset(data)
	err := r.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			out.Id, err = r.str()
		case "object":
			out.Object, err = r.str()
		case "created":
			out.Created, err = r.integer()
		case "model":
			out.Model, err = r.str()
		case "choices":
			err = r.array(func(int) error {
				c := new(pb.ChatChoice)
				out.Choices = append(out.Choices, c)
				return r.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "index":
						c.Index, err = r.int32()
					case "message":
						c.Message = new(pb.AssistantMessage)
						err = r.message(c.Message)
					case "logprobs":
						c.Logprobs, err = r.logprobs()
					case "finish_reason":
						c.FinishReason, err = r.str()
					}
					return err
				})
			})
		case "usage":
			out.Usage, err = r.usage()
		case "system_fingerprint":
			out.SystemFingerprint, err = r.str()
		case "service_tier":
			out.ServiceTier, err = r.str()
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.end()
}

// chunkReader reads the events of one stream into one reused message:
// each is sent before the next is read (the gRPC server marshals a message
// in Send, and no stats handler keeps it), and the strings every chunk
// repeats are kept from the last.
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
						ch.Delta = new(pb.AssistantMessage)
						err = r.message(ch.Delta)
					case "logprobs":
						ch.Logprobs, err = r.logprobs()
					case "finish_reason":
						ch.FinishReason, err = r.str()
					}
					return err
				})
			})
		case "usage":
			c.Usage, err = r.usage()
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

// message reads an answer's message or a stream's delta.
func (r *reader) message(m *pb.AssistantMessage) error {
	return r.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "role":
			m.Role, err = r.same("assistant")
		case "content":
			m.Content, err = r.optStr()
		case "refusal":
			m.Refusal, err = r.optStr()
		case "reasoning_content":
			m.ReasoningContent, err = r.optStr()
		case "tool_calls":
			err = r.array(func(int) error {
				c := new(pb.ToolCall)
				m.ToolCalls = append(m.ToolCalls, c)
				return r.toolCall(c)
			})
		case "audio":
			err = r.object(func(key []byte) error {
				if m.Audio == nil {
					m.Audio = new(pb.AudioOutput)
				}
				a := m.Audio
				var err error
				switch string(key) {
				case "id":
					a.Id, err = r.str()
				case "data":
					a.Data, err = r.str()
				case "expires_at":
					a.ExpiresAt, err = r.integer()
				case "transcript":
					a.Transcript, err = r.str()
				}
				return err
			})
		}
		return err
	})
}

// toolCall reads one tool call, or a stream's delta of one.
func (r *reader) toolCall(c *pb.ToolCall) error {
	return r.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "index":
			c.Index, err = r.optInt32()
		case "id":
			c.Id, err = r.str()
		case "type":
			c.Type, err = r.same("function")
		case "function":
			err = r.object(func(key []byte) error {
				if c.Function == nil {
					c.Function = new(pb.FunctionCall)
				}
				var err error
				switch string(key) {
				case "name":
					c.Function.Name, err = r.str()
				case "arguments":
					c.Function.Arguments, err = r.str()
				}
				return err
			})
		}
		return err
	})
}

// logprobs reads a chat choice's logprobs; null is nil.
func (r *reader) logprobs() (*pb.Logprobs, error) {
	var lp *pb.Logprobs
	err := r.object(func(key []byte) error {
		if lp == nil {
			lp = new(pb.Logprobs)
		}
		switch string(key) {
		case "content":
			return r.tokenLogprobs(&lp.Content)
		case "refusal":
			return r.tokenLogprobs(&lp.Refusal)
		}
		return nil
	})
	return lp, err
}

func (r *reader) tokenLogprobs(out *[]*pb.TokenLogprob) error {
	return r.array(func(int) error {
		t := new(pb.TokenLogprob)
		*out = append(*out, t)
		return r.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "token":
				t.Token, err = r.str()
			case "logprob":
				t.Logprob, err = r.float()
			case "bytes":
				err = r.bytes(&t.Bytes)
			case "top_logprobs":
				err = r.array(func(int) error {
					top := new(pb.TopLogprob)
					t.TopLogprobs = append(t.TopLogprobs, top)
					return r.object(func(key []byte) error {
						var err error
						switch string(key) {
						case "token":
							top.Token, err = r.str()
						case "logprob":
							top.Logprob, err = r.float()
						case "bytes":
							err = r.bytes(&top.Bytes)
						}
						return err
					})
				})
			}
			return err
		})
	})
}

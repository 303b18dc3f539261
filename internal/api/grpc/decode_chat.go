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
						if c.Message == nil {
							c.Message = new(pb.AssistantMessage)
						}
						err = r.message(c.Message)
					case "logprobs":
						c.Logprobs, err = r.logprobs(c.Logprobs)
					case "finish_reason":
						c.FinishReason, err = r.str()
					}
					return err
				})
			})
		case "usage":
			out.Usage, err = r.usage(out.Usage)
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

// logprobs reads a chat choice's logprobs into lp (nil: a new one, made
// with the object's first member), merged as protobuf merges a message
// sent twice.
func (r *reader) logprobs(lp *pb.Logprobs) (*pb.Logprobs, error) {
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

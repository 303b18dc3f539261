package grpcapi

import (
	"github.com/omnigate/omnigate/internal/apierror"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// appendChat appends the JSON body of r to b, with "stream": true for
// StreamChatCompletion.
func appendChat(b []byte, r *pb.ChatCompletionRequest, stream bool) ([]byte, error) {
	e := enc{b: append(b, '{')}
	e.strOmit("model", r.Model) // unset: the parser says it is missing
	if len(r.Messages) > 0 {
		e.openArray("messages")
		for i, m := range r.Messages {
			e.message(m, i)
		}
		e.closeArray()
	}
	e.optNumber("frequency_penalty", r.FrequencyPenalty)
	e.biases("logit_bias", r.LogitBias)
	e.optBool("logprobs", r.Logprobs)
	e.optInt32("top_logprobs", r.TopLogprobs)
	e.optInt64("max_tokens", r.MaxTokens)
	e.optInt64("max_completion_tokens", r.MaxCompletionTokens)
	e.optInt32("n", r.N)
	if len(r.Modalities) > 0 {
		e.openArray("modalities")
		for _, m := range r.Modalities {
			e.elemStr(m)
		}
		e.closeArray()
	}
	if a := r.Audio; a != nil {
		e.open("audio")
		e.strOmit("voice", a.Voice)
		e.strOmit("format", a.Format)
		e.close()
	}
	e.optNumber("presence_penalty", r.PresencePenalty)
	e.responseFormat(r.ResponseFormat)
	e.optInt64("seed", r.Seed)
	e.stop(r.Stop)
	e.optNumber("temperature", r.Temperature)
	e.optNumber("top_p", r.TopP)
	if len(r.Tools) > 0 {
		e.openArray("tools")
		for i, t := range r.Tools {
			e.tool(t, i)
		}
		e.closeArray()
	}
	e.toolChoice(r.ToolChoice)
	e.optBool("parallel_tool_calls", r.ParallelToolCalls)
	e.strOmit("user", r.User)
	e.optBool("store", r.Store)
	e.strings("metadata", r.Metadata)
	e.strOmit("reasoning_effort", r.ReasoningEffort)
	e.strOmit("service_tier", r.ServiceTier)
	if stream {
		e.boolean("stream", true)
	}
	if o := r.StreamOptions; o != nil {
		e.open("stream_options")
		e.optBool("include_usage", o.IncludeUsage)
		e.close()
	}
	e.extra(r.Extra)
	e.close()
	return e.b, e.err
}

// message writes messages[i].
func (e *enc) message(m *pb.ChatMessage, i int) {
	e.sep()
	e.b = append(e.b, '{')
	e.strOmit("role", m.Role)
	switch c := m.Content.(type) {
	case *pb.ChatMessage_Text:
		e.str("content", c.Text)
	case *pb.ChatMessage_Parts:
		e.openArray("content")
		for j, p := range c.Parts.GetParts() {
			e.part(p, i, j)
		}
		e.closeArray()
	}
	e.strOmit("name", m.Name)
	if len(m.ToolCalls) > 0 {
		e.openArray("tool_calls")
		for _, c := range m.ToolCalls {
			e.sep()
			e.b = append(e.b, '{')
			e.strOmit("id", c.Id)
			e.str("type", orFunction(c.Type))
			if f := c.Function; f != nil {
				e.open("function")
				e.str("name", f.Name)
				e.str("arguments", f.Arguments)
				e.close()
			}
			e.close()
		}
		e.closeArray()
	}
	e.strOmit("tool_call_id", m.ToolCallId)
	e.optStr("refusal", m.Refusal)
	if a := m.Audio; a != nil {
		e.open("audio")
		e.str("id", a.Id)
		e.close()
	}
	e.close()
}

// part writes messages[i].content[j]: {"type": t, t: payload}.
func (e *enc) part(p *pb.ContentPart, i, j int) {
	e.sep()
	e.b = append(e.b, '{')
	switch x := p.GetPart().(type) {
	case *pb.ContentPart_Text:
		e.str("type", "text")
		e.str("text", x.Text)
	case *pb.ContentPart_ImageUrl:
		e.str("type", "image_url")
		e.open("image_url")
		e.str("url", x.ImageUrl.GetUrl())
		e.strOmit("detail", x.ImageUrl.GetDetail())
		e.close()
	case *pb.ContentPart_InputAudio:
		e.str("type", "input_audio")
		e.open("input_audio")
		e.str("data", x.InputAudio.GetData())
		e.str("format", x.InputAudio.GetFormat())
		e.close()
	case *pb.ContentPart_VideoUrl:
		e.str("type", "video_url")
		e.open("video_url")
		e.str("url", x.VideoUrl.GetUrl())
		e.close()
	case *pb.ContentPart_AudioUrl:
		e.str("type", "audio_url")
		e.open("audio_url")
		e.str("url", x.AudioUrl.GetUrl())
		e.close()
	case *pb.ContentPart_Video:
		e.str("type", "video")
		e.openArray("video")
		for _, f := range x.Video.GetFrames() {
			e.elemStr(f)
		}
		e.closeArray()
	case *pb.ContentPart_Refusal:
		e.str("type", "refusal")
		e.str("refusal", x.Refusal)
	default:
		param := (&where{up: &where{up: &where{up: &where{key: "messages"}, i: i}, key: "content"}, i: j}).String()
		e.fail(apierror.Invalid(param, "Invalid '%s': a content part sets one of text, image_url, input_audio, video_url, audio_url, video and refusal.", param))
	}
	e.close()
}

// tool writes tools[i].
func (e *enc) tool(t *pb.Tool, i int) {
	e.sep()
	e.b = append(e.b, '{')
	e.str("type", orFunction(t.Type))
	if f := t.Function; f != nil {
		e.open("function")
		e.str("name", f.Name)
		e.strOmit("description", f.Description)
		if f.Parameters != nil {
			at := where{up: &where{up: &where{up: &where{key: "tools"}, i: i}, key: "function"}, key: "parameters"}
			e.object("parameters", f.Parameters, &at)
		}
		e.optBool("strict", f.Strict)
		e.close()
	}
	e.close()
}

func orFunction(t string) string {
	if t == "" {
		return "function"
	}
	return t
}

// toolChoice writes tool_choice: a mode, or the function to call.
func (e *enc) toolChoice(c *pb.ToolChoice) {
	switch x := c.GetChoice().(type) {
	case *pb.ToolChoice_Mode:
		e.str("tool_choice", x.Mode)
	case *pb.ToolChoice_Function:
		e.open("tool_choice")
		e.str("type", "function")
		e.open("function")
		e.str("name", x.Function.GetName())
		e.close()
		e.close()
	}
}

// responseFormat writes response_format: {"type": the format set, ...}.
func (e *enc) responseFormat(f *pb.ResponseFormat) {
	switch x := f.GetFormat().(type) {
	case *pb.ResponseFormat_Text:
		e.open("response_format")
		e.str("type", "text")
		e.close()
	case *pb.ResponseFormat_JsonObject:
		e.open("response_format")
		e.str("type", "json_object")
		e.close()
	case *pb.ResponseFormat_JsonSchema:
		s := x.JsonSchema
		e.open("response_format")
		e.str("type", "json_schema")
		e.open("json_schema")
		e.strOmit("name", s.GetName())
		e.strOmit("description", s.GetDescription())
		if s.GetSchema() != nil {
			at := where{up: &where{key: "response_format"}, key: "json_schema.schema"}
			e.object("schema", s.Schema, &at)
		}
		e.optBool("strict", s.Strict)
		e.close()
		e.close()
	}
}

// stop writes stop: a string or an array of them.
func (e *enc) stop(s *pb.Stop) {
	switch x := s.GetStop().(type) {
	case *pb.Stop_Text:
		e.str("stop", x.Text)
	case *pb.Stop_Sequences:
		e.openArray("stop")
		for _, q := range x.Sequences.GetSequences() {
			e.elemStr(q)
		}
		e.closeArray()
	}
}

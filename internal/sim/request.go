package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
)

// genRequest is a chat or legacy completion request, reduced to what the
// engine needs.
type genRequest struct {
	chat         bool
	model        string
	stream       bool
	includeUsage bool
	n            int
	maxTokens    int // 0: not set
	stops        []string
	seed         *int64
	temperature  *float64
	prompts      []promptInfo // chat: one; completions: one per prompt
	audio        *audioParams // audio output requested
	format       *jsonFormat  // JSON output requested (response_format)
	logprobs     bool         // chat logprobs, or completions logprobs set
	topLogprobs  int          // alternatives per token: top_logprobs, or completions logprobs

	// Tools (chat): the functions offered, tool_choice, and what of the
	// conversation decides a call under "auto".
	tools         []tool
	toolChoice    string // toolNone, toolAuto, toolRequired or toolFunction
	toolName      string // toolFunction: the function named
	parallelTools bool
	lastUser      string // the text of the last user message
	afterTool     bool   // the last message is a tool result

	cont *continuation // continue_final_message: the final assistant message
}

// promptInfo is one prompt's token count, the hash that seeds its answers
// and, when the engine caches prefixes, its KV blocks' hashes.
type promptInfo struct {
	tokens int
	hash   uint64
	blocks []uint64 // see blockHasher
}

// audioParams is the chat "audio" parameter.
type audioParams struct {
	Voice  string `json:"voice"`
	Format string `json:"format"`
}

// Wire shapes of the fields the engine reads; everything else is ignored,
// as vLLM ignores unknown fields.
type (
	chatBody struct {
		Model               string            `json:"model"`
		Messages            []chatMessage     `json:"messages"`
		Stream              bool              `json:"stream"`
		StreamOptions       *streamOptions    `json:"stream_options"`
		N                   *int              `json:"n"`
		MaxTokens           *int              `json:"max_tokens"`
		MaxCompletionTokens *int              `json:"max_completion_tokens"`
		Stop                json.RawMessage   `json:"stop"`
		Seed                *int64            `json:"seed"`
		Temperature         *float64          `json:"temperature"`
		Modalities          []string          `json:"modalities"`
		Audio               *audioParams      `json:"audio"`
		Tools               []json.RawMessage `json:"tools"`
		ToolChoice          json.RawMessage   `json:"tool_choice"`
		ParallelToolCalls   *bool             `json:"parallel_tool_calls"`
		ResponseFormat      *responseFormat   `json:"response_format"`
		Logprobs            *bool             `json:"logprobs"`
		TopLogprobs         *int              `json:"top_logprobs"`
		// vLLM's chat-template parameters.
		ContinueFinalMessage bool  `json:"continue_final_message"`
		AddGenerationPrompt  *bool `json:"add_generation_prompt"`
	}
	streamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	}
	chatMessage struct {
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		ToolCalls json.RawMessage `json:"tool_calls"` // an assistant turn's calls
	}
	contentPart struct {
		Type       string   `json:"type"`
		Text       string   `json:"text"`
		ImageURL   *urlPart `json:"image_url"`
		InputAudio *audioIn `json:"input_audio"`
		AudioURL   *urlPart `json:"audio_url"`
		VideoURL   *urlPart `json:"video_url"`
		Video      []string `json:"video"` // Model Studio: a list of frame URLs
	}
	urlPart struct {
		URL string `json:"url"`
	}
	audioIn struct {
		Data   string `json:"data"`
		Format string `json:"format"`
	}
	completionBody struct {
		Model          string          `json:"model"`
		Prompt         json.RawMessage `json:"prompt"`
		Stream         bool            `json:"stream"`
		StreamOptions  *streamOptions  `json:"stream_options"`
		N              *int            `json:"n"`
		MaxTokens      *int            `json:"max_tokens"`
		Stop           json.RawMessage `json:"stop"`
		Seed           *int64          `json:"seed"`
		Temperature    *float64        `json:"temperature"`
		Logprobs       *int            `json:"logprobs"`
		ResponseFormat *responseFormat `json:"response_format"` // a vLLM extension
	}
)

// Chat-template costs, after Qwen's ChatML: "<|im_start|>role\n" + content +
// "<|im_end|>\n" is 5 tokens around each message's content, and the
// generation prompt "<|im_start|>assistant\n" is 3.
const (
	tokensPerMessage   = 5
	tokensForAssistant = 3
	maxChoices         = 128
)

// completionDefaultMaxTokens is the legacy completions default, as in
// OpenAI's API and vLLM.
const completionDefaultMaxTokens = 16

func malformed(err error) *apierror.Error {
	e := apierror.Invalid("", "malformed JSON body: %v", err)
	e.Err = err
	return e
}

// parseChat decodes and validates a chat completion request.
func parseChat(body []byte, p *Profile) (*genRequest, error) {
	var b chatBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, malformed(err)
	}
	if len(b.Messages) == 0 {
		return nil, apierror.Invalid("messages", "messages: field required and must be a non-empty array")
	}
	r := &genRequest{chat: true, model: b.Model, stream: b.Stream, seed: b.Seed, temperature: b.Temperature}
	err := r.common(b.N, b.StreamOptions, b.Temperature, b.Stop)
	if err != nil {
		return nil, err
	}
	switch {
	case b.MaxCompletionTokens != nil:
		r.maxTokens = *b.MaxCompletionTokens
		if r.maxTokens < 1 {
			return nil, apierror.Invalid("max_completion_tokens", "max_completion_tokens must be at least 1, got %d.", r.maxTokens)
		}
	case b.MaxTokens != nil:
		r.maxTokens = *b.MaxTokens
		if r.maxTokens < 1 {
			return nil, apierror.Invalid("max_tokens", "max_tokens must be at least 1, got %d.", r.maxTokens)
		}
	}
	for _, m := range b.Modalities {
		switch m {
		case "text":
		case "audio":
			if !p.AudioOut {
				return nil, apierror.Invalid("modalities", "this model does not support audio output")
			}
			if b.Audio == nil {
				return nil, apierror.Invalid("audio", "audio output requested in modalities but the audio parameter is missing")
			}
			switch b.Audio.Format {
			case "wav", "pcm16":
			default:
				return nil, apierror.Invalid("audio.format", "audio format %q is not supported; use wav or pcm16", b.Audio.Format)
			}
			r.audio = b.Audio
		default:
			return nil, apierror.Invalid("modalities", "unsupported modality %q", m)
		}
	}
	if b.TopLogprobs != nil && (*b.TopLogprobs < 0 || *b.TopLogprobs > maxTopLogprobs) {
		return nil, apierror.Invalid("top_logprobs", "top_logprobs must be between 0 and %d, got %d", maxTopLogprobs, *b.TopLogprobs)
	}
	switch {
	case b.Logprobs != nil && *b.Logprobs:
		r.logprobs = true
		if b.TopLogprobs != nil {
			r.topLogprobs = *b.TopLogprobs
		}
	case b.TopLogprobs != nil:
		return nil, apierror.Invalid("top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.")
	}
	if r.format, err = parseResponseFormat(b.ResponseFormat); err != nil {
		return nil, err
	}
	if err := r.template(&b); err != nil {
		return nil, err
	}
	msgs := b.Messages
	if r.cont != nil {
		msgs = msgs[:len(msgs)-1] // the answer is seeded without it
	}
	bh := newBlockHasher(p, len(body))
	if bh != nil && len(b.Tools) > 0 { // the template writes tools first, into the system turn
		toolBlocks(bh, b.Tools)
	}
	pi, tail, err := chatPrompt(msgs, p, bh)
	if err != nil {
		return nil, err
	}
	switch {
	case r.cont != nil: // the open assistant turn replaces the generation prompt
		pi.tokens += countTokens(r.cont.prefix)
		bh.segment("assistant", tokensForAssistant)
		bh.text(r.cont.prefix)
	case b.AddGenerationPrompt != nil && !*b.AddGenerationPrompt:
		pi.tokens -= tokensForAssistant
	default:
		bh.segment("assistant", tokensForAssistant)
	}
	pi.blocks = bh.finish()
	r.lastUser, r.afterTool = tail.lastUser, tail.afterTool
	if err := r.parseTools(&b, &pi); err != nil {
		return nil, err
	}
	r.prompts = []promptInfo{pi}
	return r, nil
}

// template reads continue_final_message: it needs add_generation_prompt
// false and a final assistant message, and one choice of text.
func (r *genRequest) template(b *chatBody) error {
	if !b.ContinueFinalMessage {
		return nil
	}
	cont, err := finalMessage(b.Messages, b.AddGenerationPrompt)
	if err != nil {
		return err
	}
	switch {
	case r.n != 1:
		return apierror.Invalid("n", "n must be 1 with `continue_final_message`, got %d", r.n)
	case r.audio != nil:
		return apierror.Invalid("continue_final_message", "`continue_final_message` cannot continue an audio answer; only text can be continued.")
	}
	r.cont = cont
	return nil
}

// common validates and copies the parameters chat and completions share.
func (r *genRequest) common(n *int, so *streamOptions, temp *float64, stop json.RawMessage) error {
	r.n = 1
	if n != nil {
		if *n < 1 || *n > maxChoices {
			return apierror.Invalid("n", "n must be between 1 and %d, got %d", maxChoices, *n)
		}
		r.n = *n
	}
	if so != nil {
		if !r.stream {
			return apierror.Invalid("stream_options", "Stream options can only be defined when `stream=True`.")
		}
		r.includeUsage = so.IncludeUsage
	}
	if temp != nil && (*temp < 0 || *temp > 2) {
		return apierror.Invalid("temperature", "temperature must be between 0 and 2, got %g", *temp)
	}
	stops, err := parseStop(stop)
	if err != nil {
		return err
	}
	r.stops = stops
	return nil
}

func parseStop(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, malformed(err)
		}
		return []string{s}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, apierror.Invalid("stop", "stop must be a string or an array of strings")
	}
	return ss, nil
}

// chatTail is what the end of a conversation says about calling tools.
type chatTail struct {
	lastUser  string // the text of the last user message
	afterTool bool   // the last message is a tool result
}

// chatPrompt counts the prompt tokens of the messages and hashes what
// decides the answer: roles, text, media references and earlier tool calls.
// It renders each message into bh (nil: no prefix caching); the caller adds
// the generation prompt.
func chatPrompt(msgs []chatMessage, p *Profile, bh *blockHasher) (promptInfo, chatTail, error) {
	h := newSeedHash()
	n := tokensForAssistant
	var tail chatTail
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return promptInfo{}, chatTail{}, apierror.Invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role: %q is not a valid role", i, m.Role)
		}
		h.str(m.Role)
		n += tokensPerMessage
		bh.segment(m.Role, tokensPerMessage-2) // "<|im_start|>role\n"
		if tc := bytes.TrimSpace(m.ToolCalls); len(tc) > 0 && string(tc) != "null" {
			h.str(string(tc))
			n += countTokens(string(tc))
			bh.text(string(tc))
		}
		tail.afterTool = m.Role == "tool" || m.Role == "function"
		if m.Role == "user" {
			tail.lastUser = ""
		}
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || string(c) == "null":
			if m.Role == "user" || m.Role == "system" {
				return promptInfo{}, chatTail{}, apierror.Invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: field required", i)
			}
		case c[0] == '"':
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return promptInfo{}, chatTail{}, malformed(err)
			}
			h.str(s)
			n += countTokens(s)
			bh.text(s)
			if m.Role == "user" {
				tail.lastUser = s
			}
		case c[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(c, &parts); err != nil {
				return promptInfo{}, chatTail{}, apierror.Invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
			}
			for j, part := range parts {
				t, err := partTokens(&part, p, &h, bh)
				if err != nil {
					err.Param = fmt.Sprintf("messages[%d].content[%d]", i, j)
					err.Message = err.Param + ": " + err.Message
					return promptInfo{}, chatTail{}, err
				}
				n += t
				if m.Role == "user" && part.Type == "text" {
					tail.lastUser += part.Text + " "
				}
			}
		default:
			return promptInfo{}, chatTail{}, apierror.Invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of content parts", i)
		}
		bh.segment("", 2) // "<|im_end|>\n"
	}
	return promptInfo{tokens: n, hash: h.h}, tail, nil
}

// partTokens costs one content part: text by the tokenizer, media by the
// profile's fixed per-item costs. It renders the part into bh, media as
// their cost in tokens identified by their bytes.
func partTokens(c *contentPart, p *Profile, h *seedHash, bh *blockHasher) (int, *apierror.Error) {
	h.str(c.Type)
	switch c.Type {
	case "text":
		h.str(c.Text)
		bh.text(c.Text)
		return countTokens(c.Text), nil
	case "image_url":
		if c.ImageURL == nil || c.ImageURL.URL == "" {
			return 0, apierror.Invalid("", "image_url.url is required")
		}
		h.str(c.ImageURL.URL)
		bh.segment(c.ImageURL.URL, p.ImageTokens)
		return p.ImageTokens, nil
	case "input_audio":
		if c.InputAudio == nil || c.InputAudio.Data == "" {
			return 0, apierror.Invalid("", "input_audio.data is required")
		}
		h.str(c.InputAudio.Data)
		bh.segment(c.InputAudio.Data, p.AudioTokens)
		return p.AudioTokens, nil
	case "audio_url":
		if c.AudioURL == nil || c.AudioURL.URL == "" {
			return 0, apierror.Invalid("", "audio_url.url is required")
		}
		h.str(c.AudioURL.URL)
		bh.segment(c.AudioURL.URL, p.AudioTokens)
		return p.AudioTokens, nil
	case "video_url":
		if c.VideoURL == nil || c.VideoURL.URL == "" {
			return 0, apierror.Invalid("", "video_url.url is required")
		}
		h.str(c.VideoURL.URL)
		bh.segment(c.VideoURL.URL, p.VideoTokens)
		return p.VideoTokens, nil
	case "video":
		if len(c.Video) == 0 {
			return 0, apierror.Invalid("", "video must be a non-empty list of frame URLs")
		}
		for _, f := range c.Video {
			h.str(f)
			bh.segment(f, p.VideoFrameTokens)
		}
		return len(c.Video) * p.VideoFrameTokens, nil
	}
	return 0, apierror.Invalid("", "unsupported content part type %q", c.Type)
}

// parseCompletion decodes and validates a legacy completion request.
func parseCompletion(body []byte, p *Profile) (*genRequest, error) {
	var b completionBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, malformed(err)
	}
	r := &genRequest{model: b.Model, stream: b.Stream, seed: b.Seed, temperature: b.Temperature, maxTokens: completionDefaultMaxTokens}
	if err := r.common(b.N, b.StreamOptions, b.Temperature, b.Stop); err != nil {
		return nil, err
	}
	if b.MaxTokens != nil {
		r.maxTokens = *b.MaxTokens
		if r.maxTokens < 1 {
			return nil, apierror.Invalid("max_tokens", "max_tokens must be at least 1, got %d.", r.maxTokens)
		}
	}
	if b.Logprobs != nil {
		if *b.Logprobs < 0 || *b.Logprobs > maxCompletionLogprobs {
			return nil, apierror.Invalid("logprobs", "logprobs must be between 0 and %d, got %d", maxCompletionLogprobs, *b.Logprobs)
		}
		r.logprobs, r.topLogprobs = true, *b.Logprobs
	}
	var err error
	if r.format, err = parseResponseFormat(b.ResponseFormat); err != nil {
		return nil, err
	}
	prompts, err := completionPrompts(b.Prompt, p)
	if err != nil {
		return nil, err
	}
	r.prompts = prompts
	return r, nil
}

// completionPrompts accepts a string, an array of strings, an array of
// token ids or an array of such arrays.
func completionPrompts(raw json.RawMessage, p *Profile) ([]promptInfo, error) {
	raw = bytes.TrimSpace(raw)
	bad := apierror.Invalid("prompt", "prompt must be a string, an array of strings, an array of tokens or an array of token arrays")
	if len(raw) == 0 || string(raw) == "null" {
		return nil, apierror.Invalid("prompt", "prompt: field required")
	}
	textPrompt := func(s string) promptInfo {
		h := newSeedHash()
		h.str(s)
		bh := newBlockHasher(p, len(s))
		bh.text(s)
		return promptInfo{tokens: countTokens(s), hash: h.h, blocks: bh.finish()}
	}
	tokenPrompt := func(ids []int64) promptInfo {
		h := newSeedHash()
		bh := newBlockHasher(p, 3*len(ids))
		for _, id := range ids {
			h.u64(uint64(id))
			bh.id(uint64(id))
		}
		return promptInfo{tokens: len(ids), hash: h.h, blocks: bh.finish()}
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, malformed(err)
		}
		return []promptInfo{textPrompt(s)}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, bad
	}
	var out []promptInfo
	switch items[0][0] {
	case '"':
		for _, it := range items {
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return nil, bad
			}
			out = append(out, textPrompt(s))
		}
	case '[':
		for _, it := range items {
			var ids []int64
			if err := json.Unmarshal(it, &ids); err != nil || len(ids) == 0 {
				return nil, bad
			}
			out = append(out, tokenPrompt(ids))
		}
	default:
		ids := make([]int64, len(items))
		for i, it := range items {
			v, err := strconv.ParseInt(string(it), 10, 64)
			if err != nil {
				return nil, bad
			}
			ids[i] = v
		}
		out = append(out, tokenPrompt(ids))
	}
	for _, p := range out {
		if p.tokens == 0 {
			return nil, apierror.Invalid("prompt", "prompt must not be empty")
		}
	}
	return out, nil
}

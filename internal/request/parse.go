// Package request is the parsed view of an API request that every stage
// reads (router, limits, cache, front ends): Parse reads the fields the
// gateway needs in place, with the spans where they sit, so the original
// bytes can be forwarded and edited without re-encoding.
package request

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Endpoint is the API a request was sent to: one word for the URL path
// (/v1/chat/completions), the kind of request and the capability a model
// declares for it in config (chat).
type Endpoint uint8

// The endpoints whose bodies Parse reads.
const (
	Chat        Endpoint = iota + 1 // /v1/chat/completions
	Completions                     // /v1/completions
	Embeddings                      // /v1/embeddings
)

// String returns the capability word used in config: chat, completions, embeddings.
func (e Endpoint) String() string {
	switch e {
	case Chat:
		return "chat"
	case Completions:
		return "completions"
	case Embeddings:
		return "embeddings"
	}
	return "endpoint(" + strconv.Itoa(int(e)) + ")"
}

// Path is the endpoint's path below /v1/: chat/completions, completions,
// embeddings.
func (e Endpoint) Path() string {
	if e == Chat {
		return "chat/completions"
	}
	return e.String()
}

// PartRef locates one content part: messages[Message].content[Part].
type PartRef struct{ Message, Part int }

// Param is the part's path as OpenAI names it in errors.
func (p PartRef) Param() string {
	return "messages[" + strconv.Itoa(p.Message) + "].content[" + strconv.Itoa(p.Part) + "]"
}

// Media counts the media parts of a chat request by kind, and where the
// first and last of each kind are, so errors can name a part.
type Media struct {
	Image, Audio, Video                int
	FirstImage, FirstAudio, FirstVideo PartRef
	LastImage, LastAudio, LastVideo    PartRef
}

// Count returns the number of parts of kind k (Image, Audio or Video).
func (m *Media) Count(k catalog.Modality) int {
	switch k {
	case catalog.Image:
		return m.Image
	case catalog.Audio:
		return m.Audio
	case catalog.Video:
		return m.Video
	}
	return 0
}

// Where returns the first and last part of kind k.
func (m *Media) Where(k catalog.Modality) (first, last PartRef) {
	switch k {
	case catalog.Image:
		return m.FirstImage, m.LastImage
	case catalog.Audio:
		return m.FirstAudio, m.LastAudio
	case catalog.Video:
		return m.FirstVideo, m.LastVideo
	}
	return PartRef{}, PartRef{}
}

func (m *Media) add(k catalog.Modality, at PartRef) {
	var n *int
	var first, last *PartRef
	switch k {
	case catalog.Image:
		n, first, last = &m.Image, &m.FirstImage, &m.LastImage
	case catalog.Audio:
		n, first, last = &m.Audio, &m.FirstAudio, &m.LastAudio
	default:
		n, first, last = &m.Video, &m.FirstVideo, &m.LastVideo
	}
	if *n == 0 {
		*first = at
	}
	*last = at
	*n++
}

// Request is what the gateway needs from a request body, read in place by
// Parse. Spans are [start, end) byte offsets of a value (strings with their
// quotes) in the parsed body, for splicing; a zero span means absent.
type Request struct {
	Endpoint  Endpoint
	Model     string
	ModelSpan [2]int

	Stream       bool
	StreamSpan   [2]int
	IncludeUsage bool // stream_options.include_usage
	// StreamOptionsSpan is where the stream_options value sits, null too.
	StreamOptionsSpan [2]int

	// MaxTokens is max_tokens or max_completion_tokens, whichever was sent
	// (MaxTokensParam says which); 0 and "" when absent.
	MaxTokens      int
	MaxTokensParam string
	MaxTokensSpan  [2]int

	Temperature     float64
	HasTemperature  bool
	TemperatureSpan [2]int
	TopP            float64
	HasTopP         bool
	TopPSpan        [2]int

	N     int // 1 when absent
	NSpan [2]int

	Media Media
	// Modalities is the requested output modalities (catalog.Text, catalog.Audio);
	// zero when the request does not say.
	Modalities catalog.Modalities
	// AudioRequested: modalities includes audio, or an audio object was sent.
	AudioRequested bool

	// PromptChars approximates the prompt's length in characters: the runes
	// of message text, the bytes of tool definitions, 4 per token of token
	// prompts. It feeds token estimates and routing.
	PromptChars int
	NumMessages int // chat
	NumInputs   int // prompts (completions) or inputs (embeddings)
}

// reset clears r for reuse, keeping the Model string so that a pooled
// Request parsing the same model again does not allocate.
func (r *Request) reset(ep Endpoint) {
	model := r.Model
	*r = Request{Endpoint: ep, N: 1, Model: model}
}

// Parse reads the fields the gateway needs from body, checking the body is
// valid JSON and every known parameter has the type and form OpenAI
// requires. Unknown parameters are left alone. r is overwritten; it may be
// reused across calls (from a sync.Pool) and Parse does not allocate on
// valid input. Errors are *apierror.Error 400s naming the parameter.
func Parse(ep Endpoint, body []byte, r *Request) error {
	r.reset(ep)
	p := parser{d: jsonscan.NewDecoder(body), r: r}
	err := p.parse()
	if err == nil {
		return nil
	}
	var se *jsonscan.Error
	if !errors.As(err, &se) {
		// A semantic error came first; but a body that is not JSON at all is
		// reported as such, as OpenAI does.
		if cerr := jsonscan.Check(body); cerr != nil {
			errors.As(cerr, &se)
		}
	}
	if se != nil {
		return &apierror.Error{Status: 400, Type: apierror.TypeInvalidRequest,
			Message: "We could not parse the JSON body of your request: " + se.Error() + ".", Err: se}
	}
	return err
}

type parser struct {
	d        jsonscan.Decoder
	r        *Request
	hasModel bool
	// set when a parameter was sent (and not null)
	hasStreamOptions, hasAudio, hasLogprobs, hasTopLogprobs, hasMessages, hasInput bool
	logprobs                                                                       bool
	maxTokensParams                                                                int
}

func (p *parser) parse() error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Object {
		return apierror.Invalid("", "The request body must be a JSON object, but got %s instead.", p.got())
	}
	var field func(key []byte) error
	switch p.r.Endpoint {
	case Chat:
		field = p.chatField
	case Completions:
		field = p.completionsField
	case Embeddings:
		field = p.embeddingsField
	default:
		return apierror.Invalid("", "Unknown endpoint %v.", p.r.Endpoint)
	}
	if err := p.d.Object(field); err != nil {
		return err
	}
	if err := p.d.End(); err != nil {
		return err
	}
	return p.finish()
}

// finish checks required parameters and those that depend on each other.
func (p *parser) finish() error {
	r := p.r
	if !p.hasModel {
		r.Model = ""
		return missing("model")
	}
	switch r.Endpoint {
	case Chat:
		if !p.hasMessages {
			return missing("messages")
		}
	case Completions:
		if !p.hasInput {
			return missing("prompt")
		}
	case Embeddings:
		if !p.hasInput {
			return missing("input")
		}
	}
	if p.maxTokensParams > 1 {
		return apierror.Invalid("max_tokens", "Only one of 'max_tokens' and 'max_completion_tokens' may be set.")
	}
	if p.hasStreamOptions && !r.Stream {
		return apierror.Invalid("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	if p.hasTopLogprobs && !p.logprobs {
		return apierror.Invalid("top_logprobs", "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is specified.")
	}
	if r.Modalities.Has(catalog.Audio) && !p.hasAudio {
		return apierror.Invalid("audio", "The 'audio' parameter is required when 'modalities' includes 'audio'.")
	}
	return nil
}

// chatField reads one top-level member of a chat completions body.
func (p *parser) chatField(key []byte) error {
	switch string(key) {
	case "messages":
		p.hasMessages = true
		return p.messages()
	case "max_completion_tokens":
		return p.maxTokens("max_completion_tokens")
	case "logprobs":
		v, ok, err := p.optBool(top("logprobs"))
		p.logprobs, p.hasLogprobs = v, ok
		return err
	case "top_logprobs":
		_, ok, err := p.optInt(top("top_logprobs"), 0, 20)
		p.hasTopLogprobs = ok
		return err
	case "response_format":
		return p.responseFormat()
	case "tools":
		start := p.d.Offset()
		err := p.tools()
		p.r.PromptChars += p.d.Offset() - start
		return err
	case "tool_choice":
		return p.toolChoice()
	case "modalities":
		return p.modalities()
	case "audio":
		return p.audio()
	case "parallel_tool_calls", "store":
		_, _, err := p.optBool(top(string(key)))
		return err
	}
	return p.samplingField(key)
}

// completionsField reads one top-level member of a completions body.
func (p *parser) completionsField(key []byte) error {
	switch string(key) {
	case "prompt":
		p.hasInput = true
		return p.inputs(top("prompt"))
	case "logprobs": // an integer here, unlike chat
		_, _, err := p.optInt(top("logprobs"), 0, 5)
		return err
	case "echo":
		_, _, err := p.optBool(top("echo"))
		return err
	case "best_of":
		_, _, err := p.optInt(top("best_of"), 1, 20)
		return err
	case "suffix":
		_, _, err := p.optString(top("suffix"))
		return err
	}
	return p.samplingField(key)
}

// embeddingsField reads one top-level member of an embeddings body.
func (p *parser) embeddingsField(key []byte) error {
	switch string(key) {
	case "model":
		return p.model()
	case "input":
		p.hasInput = true
		return p.inputs(top("input"))
	case "encoding_format":
		raw, ok, err := p.optString(top("encoding_format"))
		if err != nil || !ok {
			return err
		}
		if !jsonscan.Equal(raw, "float") && !jsonscan.Equal(raw, "base64") {
			return badValue(top("encoding_format"), raw, "'float' and 'base64'")
		}
	case "dimensions":
		_, _, err := p.optInt(top("dimensions"), 1, 1<<20)
		return err
	case "user":
		_, _, err := p.optString(top("user"))
		return err
	}
	return nil
}

// samplingField reads the members chat and completions share.
func (p *parser) samplingField(key []byte) error {
	r := p.r
	switch string(key) {
	case "model":
		return p.model()
	case "stream":
		start := p.d.Offset()
		v, ok, err := p.optBool(top("stream"))
		if ok {
			r.Stream, r.StreamSpan = v, [2]int{start, p.d.Offset()}
		}
		return err
	case "stream_options":
		return p.streamOptions()
	case "max_tokens":
		return p.maxTokens("max_tokens")
	case "temperature":
		start := p.d.Offset()
		v, ok, err := p.optFloat(top("temperature"))
		if ok {
			r.Temperature, r.HasTemperature, r.TemperatureSpan = v, true, [2]int{start, p.d.Offset()}
		}
		return err
	case "top_p":
		start := p.d.Offset()
		v, ok, err := p.optFloat(top("top_p"))
		if ok {
			r.TopP, r.HasTopP, r.TopPSpan = v, true, [2]int{start, p.d.Offset()}
		}
		return err
	case "n":
		start := p.d.Offset()
		v, ok, err := p.optInt(top("n"), 1, 1<<20)
		if ok {
			r.N, r.NSpan = int(v), [2]int{start, p.d.Offset()}
		}
		return err
	case "stop":
		return p.stop()
	case "seed":
		_, _, err := p.optInt(top("seed"), -1<<63, 1<<63-1)
		return err
	case "presence_penalty", "frequency_penalty":
		v, ok, err := p.optFloat(top(string(key)))
		if ok && (v < -2 || v > 2) {
			return outOfRange(top(string(key)), "decimal", fmtFloat(v), -2, 2)
		}
		return err
	case "user":
		_, _, err := p.optString(top("user"))
		return err
	case "logit_bias":
		return p.optObject(top("logit_bias"), nil)
	}
	return nil
}

func (p *parser) model() error {
	at := top("model")
	start := p.d.Offset()
	raw, ok, err := p.optString(at)
	if err != nil {
		return err
	}
	if !ok {
		return typeErr(at, "a string", "null")
	}
	p.hasModel = true
	p.r.ModelSpan = [2]int{start, p.d.Offset()}
	var buf [128]byte
	name := raw
	if hasBackslash(raw) {
		name = jsonscan.AppendUnescaped(buf[:0], raw)
	}
	if p.r.Model != string(name) {
		p.r.Model = string(name)
	}
	return nil
}

func (p *parser) maxTokens(param string) error {
	start := p.d.Offset()
	v, ok, err := p.optInt(top(param), 1, 1<<62)
	if ok && err == nil {
		p.maxTokensParams++
		r := p.r
		r.MaxTokens, r.MaxTokensParam, r.MaxTokensSpan = int(v), param, [2]int{start, p.d.Offset()}
	}
	return err
}

func (p *parser) streamOptions() error {
	start := p.d.Offset()
	err := p.streamOptionsValue()
	p.r.StreamOptionsSpan = [2]int{start, p.d.Offset()}
	return err
}

func (p *parser) streamOptionsValue() error {
	if k, err := p.d.Peek(); err != nil || k == jsonscan.Null {
		if err != nil {
			return err
		}
		return p.d.ReadNull()
	}
	p.hasStreamOptions = true
	return p.reqObject(top("stream_options"), func(key []byte) error {
		if string(key) == "include_usage" {
			v, _, err := p.optBool(path{top: "stream_options", i: -1, j: -1, leaf: "include_usage"})
			p.r.IncludeUsage = v
			return err
		}
		return nil
	})
}

func (p *parser) stop() error {
	at := top("stop")
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	switch k {
	case jsonscan.Null:
		return nil
	case jsonscan.String:
		_, _, err := p.d.ReadRawString()
		return err
	case jsonscan.Array:
		n := 0
		err := p.d.Array(func(i int) error {
			n++
			if n > 4 {
				return apierror.Invalid("stop", "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with more elements instead.")
			}
			_, _, err := p.reqString(at.index(i))
			return err
		})
		return err
	}
	return typeErr(at, "one of a string or an array of strings", p.got())
}

// inputs reads a completions prompt or an embeddings input: a string, an
// array of strings, an array of token ids, or an array of token-id arrays.
func (p *parser) inputs(at path) error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	r := p.r
	switch k {
	case jsonscan.String:
		raw, _, err := p.d.ReadRawString()
		r.PromptChars += utf8.RuneCount(raw)
		r.NumInputs = 1
		return err
	case jsonscan.Array:
	default:
		return typeErr(at, "one of a string, an array of strings, an array of integers, or an array of arrays of integers", p.got())
	}
	var first jsonscan.Kind
	n := 0
	err = p.d.Array(func(i int) error {
		n++
		k, err := p.d.Peek()
		if err != nil {
			return err
		}
		if i == 0 {
			first = k
		}
		el := at.index(i)
		switch {
		case k != first:
			return typeErr(el, "an element of the same type as the first ("+first.String()+")", p.got())
		case k == jsonscan.String:
			raw, _, err := p.d.ReadRawString()
			r.PromptChars += utf8.RuneCount(raw)
			return err
		case k == jsonscan.Number:
			r.PromptChars += 4
			return p.token(el)
		case k == jsonscan.Array:
			m := 0
			err := p.d.Array(func(j int) error {
				m++
				r.PromptChars += 4
				return p.token(path{top: el.top, i: el.i, j: j})
			})
			if err == nil && m == 0 {
				return emptyArray(el)
			}
			return err
		}
		return typeErr(el, "a string, an integer or an array of integers", p.got())
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return emptyArray(at)
	}
	if first == jsonscan.Array || first == jsonscan.String {
		r.NumInputs = n
	} else {
		r.NumInputs = 1
	}
	return nil
}

func (p *parser) token(at path) error {
	_, ok, err := p.optInt(at, 0, 1<<31-1)
	if err == nil && !ok {
		return typeErr(at, "an integer", "null")
	}
	return err
}

// hasBackslash reports whether raw string contents contain an escape.
func hasBackslash(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' {
			return true
		}
	}
	return false
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

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

	Stream bool
	// StreamSpan and StreamOptionsSpan are where stream and stream_options
	// sit, null included: a stream-only deployment rewrites them.
	StreamSpan, StreamOptionsSpan [2]int

	// MaxTokens is max_tokens or max_completion_tokens, whichever was sent
	// (MaxTokensParam says which, MaxTokensSpan where its value is); 0 and
	// "" when absent. Sent as null, MaxTokens is 0 but the name and the
	// span of null are kept, so that SetMaxTokens replaces the null rather
	// than adding a second key.
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

	// MessagesClose is the span of the "]" that closes a chat request's
	// messages, before which a message can be appended (a continuation's).
	MessagesClose [2]int
	// PromptSpan is where a chat's messages or a completion's prompt sit
	// (an edit inside, a message appended, grows it). Prefix affinity
	// hashes these bytes.
	PromptSpan [2]int
	// UserSpan is where the value of "user" sits.
	UserSpan [2]int

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

	// For routing by the request's shape: the number of messages (1 for a
	// completion), of tools, whether response_format asks for JSON,
	// whether logprobs were asked for, and where the last user message's
	// content sits.
	Turns        int
	Tools        int
	JSONOut      bool
	Logprobs     bool
	LastUserSpan [2]int

	// NonCanonical lists the integer parameters written with a fraction or
	// an exponent (10.0, 1e1), in body order. Being integral they are
	// accepted, as OpenAI accepts them, but engines differ on that (Go's and
	// Rust's decoders refuse them), so Normalize writes them as plain
	// integers before the body is forwarded. Token ids must be plain.
	NonCanonical    [maxNonCanonical]IntValue
	NumNonCanonical int
}

// maxNonCanonical is the number of integer parameters one body may have
// (max_tokens, n, seed, logprobs, best_of…; each once, duplicates being
// rejected).
const maxNonCanonical = 5

// IntValue is an integer parameter's value and the span of its literal.
type IntValue struct {
	Span  [2]int
	Value int64
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
	var p parser // set field by field: a composite literal is built, then copied
	p.d, p.r = jsonscan.NewDecoder(body), r
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

// param numbers the top-level parameters Parse reads, on any endpoint;
// bit k of parser.seen says the body has had parameter k, to reject a
// second one.
type param uint8

// The top-level parameters.
const (
	pModel param = iota
	pMessages
	pMaxCompletionTokens
	pLogprobs
	pTopLogprobs
	pResponseFormat
	pTools
	pToolChoice
	pModalities
	pAudio
	pParallelToolCalls
	pStore
	pPrompt
	pEcho
	pBestOf
	pSuffix
	pInput
	pEncodingFormat
	pDimensions
	pUser
	pStream
	pStreamOptions
	pMaxTokens
	pTemperature
	pTopP
	pN
	pStop
	pSeed
	pPresencePenalty
	pFrequencyPenalty
	pLogitBias

	pUnknown // not a parameter Parse reads: left to the engine
)

// param numbers the top-level key (decoded), and rejects a second one.
// pUnknown keys are left unread, and ObjectUnique checks those.
func (p *parser) param(key []byte) (param, error) {
	var k param
	switch string(key) {
	case "model":
		k = pModel
	case "messages":
		k = pMessages
	case "max_completion_tokens":
		k = pMaxCompletionTokens
	case "logprobs":
		k = pLogprobs
	case "top_logprobs":
		k = pTopLogprobs
	case "response_format":
		k = pResponseFormat
	case "tools":
		k = pTools
	case "tool_choice":
		k = pToolChoice
	case "modalities":
		k = pModalities
	case "audio":
		k = pAudio
	case "parallel_tool_calls":
		k = pParallelToolCalls
	case "store":
		k = pStore
	case "prompt":
		k = pPrompt
	case "echo":
		k = pEcho
	case "best_of":
		k = pBestOf
	case "suffix":
		k = pSuffix
	case "input":
		k = pInput
	case "encoding_format":
		k = pEncodingFormat
	case "dimensions":
		k = pDimensions
	case "user":
		k = pUser
	case "stream":
		k = pStream
	case "stream_options":
		k = pStreamOptions
	case "max_tokens":
		k = pMaxTokens
	case "temperature":
		k = pTemperature
	case "top_p":
		k = pTopP
	case "n":
		k = pN
	case "stop":
		k = pStop
	case "seed":
		k = pSeed
	case "presence_penalty":
		k = pPresencePenalty
	case "frequency_penalty":
		k = pFrequencyPenalty
	case "logit_bias":
		k = pLogitBias
	default:
		return pUnknown, nil
	}
	if p.sent(k) {
		return k, duplicateParam(key)
	}
	p.seen |= 1 << k
	return k, nil
}

// sent reports whether the body has parameter k (null included: a null
// required parameter fails when it is read).
func (p *parser) sent(k param) bool { return p.seen&(1<<k) != 0 }

type parser struct {
	d    jsonscan.Decoder
	keys jsonscan.Keys // for the keys of inspected objects Parse leaves unread
	seen uint64        // bit k: the body has had param k
	r    *Request
	// set when a parameter was sent (and not null)
	hasStreamOptions, hasAudio, hasTopLogprobs bool
	logprobs                                   bool
	maxTokensParams                            int // null included
	// tools and tool_choice, checked together once both may have come
	hasTools      bool   // a non-empty tools array
	toolsSpan     [2]int // where it is
	choosesTool   bool   // a tool_choice other than none and null
	toolChoiceFor []byte // the function it names (raw), if it names one
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
	if err := p.members(top(""), field); err != nil {
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
	if !p.sent(pModel) {
		r.Model = ""
		return missing("model")
	}
	switch r.Endpoint {
	case Chat:
		if !p.sent(pMessages) {
			return missing("messages")
		}
	case Completions:
		if !p.sent(pPrompt) {
			return missing("prompt")
		}
	case Embeddings:
		if !p.sent(pInput) {
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
	return p.checkToolChoice()
}

// chatField reads one top-level member of a chat completions body.
func (p *parser) chatField(key []byte) error {
	k, err := p.param(key)
	if err != nil {
		return err
	}
	switch k {
	case pMessages:
		return p.messages()
	case pMaxCompletionTokens:
		return p.maxTokens("max_completion_tokens")
	case pLogprobs:
		v, _, err := p.optBool(top("logprobs"))
		p.logprobs, p.r.Logprobs = v, v
		return err
	case pTopLogprobs:
		_, ok, err := p.optInt(top("top_logprobs"), 0, 20)
		p.hasTopLogprobs = ok
		return err
	case pResponseFormat:
		return p.responseFormat()
	case pTools:
		start := p.d.Offset()
		n, err := p.tools()
		p.r.PromptChars += p.d.Offset() - start
		p.hasTools, p.toolsSpan = n > 0, [2]int{start, p.d.Offset()}
		p.r.Tools = n
		return err
	case pToolChoice:
		return p.toolChoice()
	case pModalities:
		return p.modalities()
	case pAudio:
		return p.audio()
	case pParallelToolCalls:
		_, _, err := p.optBool(top("parallel_tool_calls"))
		return err
	case pStore:
		_, _, err := p.optBool(top("store"))
		return err
	}
	return p.samplingField(k)
}

// completionsField reads one top-level member of a completions body.
func (p *parser) completionsField(key []byte) error {
	k, err := p.param(key)
	if err != nil {
		return err
	}
	switch k {
	case pPrompt:
		start := p.d.Offset()
		err := p.inputs(top("prompt"))
		p.r.PromptSpan = [2]int{start, p.d.Offset()}
		p.r.Turns, p.r.LastUserSpan = 1, p.r.PromptSpan
		return err
	case pLogprobs: // an integer here, unlike chat
		n, ok, err := p.optInt(top("logprobs"), 0, 5)
		p.r.Logprobs = ok && n > 0
		return err
	case pEcho:
		_, _, err := p.optBool(top("echo"))
		return err
	case pBestOf:
		_, _, err := p.optInt(top("best_of"), 1, 20)
		return err
	case pSuffix:
		_, _, err := p.optString(top("suffix"))
		return err
	}
	return p.samplingField(k)
}

// embeddingsField reads one top-level member of an embeddings body.
func (p *parser) embeddingsField(key []byte) error {
	k, err := p.param(key)
	if err != nil {
		return err
	}
	switch k {
	case pModel:
		return p.model()
	case pInput:
		return p.inputs(top("input"))
	case pEncodingFormat:
		raw, ok, err := p.optString(top("encoding_format"))
		if err != nil || !ok {
			return err
		}
		if !jsonscan.Equal(raw, "float") && !jsonscan.Equal(raw, "base64") {
			return badValue(top("encoding_format"), raw, "'float' and 'base64'")
		}
	case pDimensions:
		_, _, err := p.optInt(top("dimensions"), 1, 1<<20)
		return err
	case pUser:
		return p.user()
	}
	return nil
}

// user reads "user", the end user's id, and where it is.
func (p *parser) user() error {
	start := p.d.Offset()
	_, _, err := p.optString(top("user"))
	p.r.UserSpan = [2]int{start, p.d.Offset()}
	return err
}

// samplingField reads the members chat and completions share.
func (p *parser) samplingField(k param) error {
	r := p.r
	switch k {
	case pModel:
		return p.model()
	case pStream:
		start := p.d.Offset()
		v, _, err := p.optBool(top("stream"))
		r.Stream, r.StreamSpan = v, [2]int{start, p.d.Offset()}
		return err
	case pStreamOptions:
		start := p.d.Offset()
		err := p.streamOptions()
		r.StreamOptionsSpan = [2]int{start, p.d.Offset()}
		return err
	case pMaxTokens:
		return p.maxTokens("max_tokens")
	case pTemperature:
		start := p.d.Offset()
		v, ok, err := p.optFloat(top("temperature"))
		if ok {
			r.Temperature, r.HasTemperature, r.TemperatureSpan = v, true, [2]int{start, p.d.Offset()}
		}
		return err
	case pTopP:
		start := p.d.Offset()
		v, ok, err := p.optFloat(top("top_p"))
		if ok {
			r.TopP, r.HasTopP, r.TopPSpan = v, true, [2]int{start, p.d.Offset()}
		}
		return err
	case pN:
		start := p.d.Offset()
		v, ok, err := p.optInt(top("n"), 1, 1<<20)
		if ok {
			r.N, r.NSpan = int(v), [2]int{start, p.d.Offset()}
		}
		return err
	case pStop:
		return p.stop()
	case pSeed:
		_, _, err := p.optInt(top("seed"), -1<<63, 1<<63-1)
		return err
	case pPresencePenalty:
		return p.penalty(top("presence_penalty"))
	case pFrequencyPenalty:
		return p.penalty(top("frequency_penalty"))
	case pUser:
		return p.user()
	case pLogitBias:
		return p.optObject(top("logit_bias"), nil)
	}
	return nil
}

func (p *parser) model() error {
	at := top("model")
	start := p.d.Offset()
	raw, esc, err := p.reqString(at)
	if err != nil {
		return err
	}
	p.r.ModelSpan = [2]int{start, p.d.Offset()}
	var buf [128]byte
	name := raw
	if esc {
		name = jsonscan.AppendUnescaped(buf[:0], raw)
	}
	if p.r.Model != string(name) {
		p.r.Model = string(name)
	}
	return nil
}

// maxTokens reads max_tokens or max_completion_tokens. null is recorded
// too (MaxTokens 0), as sent: it counts for "only one of", and a default
// limit replaces it in place.
func (p *parser) maxTokens(param string) error {
	start := p.d.Offset()
	v, _, err := p.optInt(top(param), 1, 1<<62)
	if err != nil {
		return err
	}
	p.maxTokensParams++
	r := p.r
	r.MaxTokens, r.MaxTokensParam, r.MaxTokensSpan = int(v), param, [2]int{start, p.d.Offset()}
	return nil
}

func (p *parser) penalty(at path) error {
	v, ok, err := p.optFloat(at)
	if ok && (v < -2 || v > 2) {
		return outOfRange(at, "decimal", fmtFloat(v), -2, 2)
	}
	return err
}

func (p *parser) streamOptions() error {
	if k, err := p.d.Peek(); err != nil || k == jsonscan.Null {
		if err != nil {
			return err
		}
		return p.d.ReadNull()
	}
	p.hasStreamOptions = true
	var hasUsage bool
	return p.reqObject(top("stream_options"), func(key []byte) error {
		if string(key) == "include_usage" {
			if again(&hasUsage) {
				return duplicate(top("stream_options"), key)
			}
			_, _, err := p.optBool(top("stream_options").child("include_usage"))
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
	return nil
}

// token reads a token id. Unlike other integers it must be written plain:
// a prompt has any number of them, too many to rewrite.
func (p *parser) token(at path) error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Number {
		return typeErr(at, "an integer", p.got())
	}
	lit, err := p.d.ReadNumber()
	if err != nil {
		return err
	}
	if !plainInt(lit) {
		return typeErr(at, "an integer", "a decimal")
	}
	_, err = intValue(&at, lit, 0, 1<<31-1)
	return err
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

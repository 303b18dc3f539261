package request

import (
	"strconv"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Message roles.
const (
	roleNone = iota
	roleSystem
	roleDeveloper
	roleUser
	roleAssistant
	roleTool
	roleFunction
)

// parseRole reads a role from string contents, decoded.
func parseRole(raw []byte) int {
	switch string(raw) {
	case "system":
		return roleSystem
	case "developer":
		return roleDeveloper
	case "user":
		return roleUser
	case "assistant":
		return roleAssistant
	case "tool":
		return roleTool
	case "function":
		return roleFunction
	}
	return roleNone
}

// Content part types; the payload of part type t sits under partKeys[t].
const (
	partNone = iota
	partText
	partImage
	partInputAudio
	partAudioURL
	partVideoURL
	partVideo
	partRefusal
)

var partKeys = [...]string{"", "text", "image_url", "input_audio", "audio_url", "video_url", "video", "refusal"}

const partTypes = "'text', 'image_url', 'input_audio', 'audio_url', 'video_url', 'video', and 'refusal'"

// parsePartType reads a part type from string contents, decoded, or a key.
func parsePartType(raw []byte) int {
	for t := partText; t < len(partKeys); t++ {
		if string(raw) == partKeys[t] {
			return t
		}
	}
	return partNone
}

func (p *parser) messages() error {
	at := top("messages")
	start := p.d.Offset()
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Array {
		return typeErr(at, "an array", p.got())
	}
	n := 0
	err = p.d.Array(func(i int) error {
		n++
		return p.message(i)
	})
	p.r.Turns = n
	if err == nil && n == 0 {
		return emptyArray(at)
	}
	if end := p.d.Offset(); err == nil {
		p.r.MessagesClose = [2]int{end - 1, end}
		p.r.PromptSpan = [2]int{start, end}
	}
	return err
}

func (p *parser) message(i int) error {
	at := path{top: "messages", i: i, j: -1}
	role := roleNone
	var hasContent, hasCalls, hasCallID bool
	var contentSpan [2]int
	var saw struct{ role, content, name, callID, calls, functionCall bool }
	err := p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "role":
			if again(&saw.role) {
				return duplicate(at, key)
			}
			raw, esc, err := p.reqString(at.child("role"))
			if err != nil {
				return err
			}
			name := raw
			if esc { // "\u0075ser" is user
				var buf [64]byte // 10 characters as \uXXXX
				name = unescapeShort(buf[:], raw)
			}
			role = parseRole(name)
			if role == roleNone {
				return badValue(at.child("role"), raw, "'system', 'assistant', 'user', 'function', 'tool', and 'developer'")
			}
		case "content":
			if again(&saw.content) {
				return duplicate(at, key)
			}
			start := p.d.Offset()
			ok, err := p.content(i)
			hasContent, contentSpan = ok, [2]int{start, p.d.Offset()}
			return err
		case "name":
			if again(&saw.name) {
				return duplicate(at, key)
			}
			_, _, err := p.optString(at.child("name"))
			return err
		case "tool_call_id":
			if again(&saw.callID) {
				return duplicate(at, key)
			}
			_, ok, err := p.optString(at.child("tool_call_id"))
			hasCallID = ok
			return err
		case "tool_calls":
			if again(&saw.calls) {
				return duplicate(at, key)
			}
			start := p.d.Offset()
			n, err := p.toolCalls(path{top: "messages", i: i, sub: "tool_calls", j: -1})
			p.r.PromptChars += p.d.Offset() - start
			hasCalls = hasCalls || n > 0
			return err
		case "function_call":
			if again(&saw.functionCall) {
				return duplicate(at, key)
			}
			start := p.d.Offset()
			err := p.optObject(at.child("function_call"), nil)
			hasCalls = hasCalls || p.d.Offset()-start > len("null")
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if role == roleUser && hasContent {
		p.r.LastUserSpan = contentSpan
	}
	switch {
	case !saw.role:
		return missing(at.child("role").String())
	case role == roleAssistant:
		if !hasContent && !hasCalls {
			param := at.child("content").String()
			return apierror.Invalid(param, "Invalid '%s': an assistant message must have either 'content' or 'tool_calls'.", param)
		}
	case role == roleTool && !hasCallID:
		return missing(at.child("tool_call_id").String())
	case !hasContent && role != roleFunction:
		return missing(at.child("content").String())
	}
	return nil
}

// content reads messages[i].content: a string, an array of parts, or null
// (present false).
func (p *parser) content(i int) (present bool, err error) {
	at := path{top: "messages", i: i, sub: "content", j: -1}
	k, err := p.d.Peek()
	if err != nil {
		return false, err
	}
	switch k {
	case jsonscan.Null:
		return false, p.d.ReadNull()
	case jsonscan.String:
		raw, _, err := p.d.ReadRawString()
		p.r.PromptChars += utf8.RuneCount(raw)
		return true, err
	case jsonscan.Array:
		n := 0
		err := p.d.Array(func(j int) error {
			n++
			return p.part(at.index(j), PartRef{Message: i, Part: j})
		})
		if err == nil && n == 0 {
			return false, emptyArray(at)
		}
		return true, err
	}
	return false, typeErr(at, "one of a string or an array of objects", p.got())
}

// part reads one content part. The type may come after the payload, so
// payloads are checked as they come and matched with the type at the end.
func (p *parser) part(at path, ref PartRef) error {
	typ, hasType := partNone, false
	var typRaw []byte
	var has uint16 // bit t: payload of part type t present
	textChars := 0
	err := p.reqObject(at, func(key []byte) error {
		t := parsePartType(key)
		if t != partNone {
			if has&(1<<t) != 0 {
				return duplicate(at, key)
			}
			has |= 1 << t
		}
		switch t {
		case partNone:
			if string(key) == "type" {
				if again(&hasType) {
					return duplicate(at, key)
				}
				raw, esc, err := p.reqString(at.child("type"))
				typRaw = raw
				name := raw
				if esc { // "te\u0078t" is text
					var buf [72]byte // 11 characters as \uXXXX
					name = unescapeShort(buf[:], raw)
				}
				typ = parsePartType(name)
				return err
			}
		case partText, partRefusal:
			raw, _, err := p.reqString(at.child(partKeys[t]))
			textChars = utf8.RuneCount(raw)
			return err
		case partImage:
			return p.urlObject(at.child("image_url"), "image/", true)
		case partAudioURL:
			return p.urlObject(at.child("audio_url"), "audio/", false)
		case partVideoURL:
			return p.urlObject(at.child("video_url"), "video/", false)
		case partInputAudio:
			return p.inputAudio(at.child("input_audio"))
		case partVideo:
			return p.videoFrames(at)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !hasType {
		return missing(at.child("type").String())
	}
	if typ == partNone {
		return badValue(at.child("type"), typRaw, partTypes)
	}
	if has&(1<<typ) == 0 {
		return missing(at.child(partKeys[typ]).String())
	}
	switch typ {
	case partText, partRefusal:
		p.r.PromptChars += textChars
	case partImage:
		p.r.Media.add(catalog.Image, ref)
	case partInputAudio, partAudioURL:
		p.r.Media.add(catalog.Audio, ref)
	case partVideoURL, partVideo:
		p.r.Media.add(catalog.Video, ref)
	}
	return nil
}

// urlObject reads {"url": ..., "detail": ...}; detail only for images.
func (p *parser) urlObject(at path, media string, image bool) error {
	var hasURL, hasDetail bool
	err := p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "url":
			if again(&hasURL) {
				return duplicate(at, key)
			}
			raw, esc, err := p.reqString(at.child("url"))
			if err != nil {
				return err
			}
			return checkURL(at.child("url"), raw, esc, media, !image)
		case "detail":
			if again(&hasDetail) {
				return duplicate(at, key)
			}
			if !image {
				return nil
			}
			raw, ok, err := p.optString(at.child("detail"))
			if err == nil && ok && !oneOf(raw, "auto", "low", "high") {
				return badValue(at.child("detail"), raw, "'auto', 'low', and 'high'")
			}
			return err
		}
		return nil
	})
	if err == nil && !hasURL {
		return missing(at.child("url").String())
	}
	return err
}

// inputAudio reads {"data": base64 | data URL | http(s) URL, "format": "wav"}.
func (p *parser) inputAudio(at path) error {
	var hasData, hasFormat bool
	err := p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "data":
			if again(&hasData) {
				return duplicate(at, key)
			}
			raw, esc, err := p.reqString(at.child("data"))
			if err != nil {
				return err
			}
			if hasPrefixFold(raw, "data:") || hasPrefixFold(raw, "http://") || hasPrefixFold(raw, "https://") {
				return checkURL(at.child("data"), raw, esc, "audio/", true)
			}
			if len(raw) == 0 || (!esc && !isBase64(raw)) {
				param := at.child("data").String()
				return apierror.Invalid(param, "Invalid '%s': expected base64-encoded audio data.", param)
			}
		case "format":
			if again(&hasFormat) {
				return duplicate(at, key)
			}
			raw, _, err := p.reqString(at.child("format"))
			if err == nil && len(raw) == 0 {
				return badValue(at.child("format"), raw, "'wav', 'mp3' and other audio formats")
			}
			return err
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case !hasData:
		return missing(at.child("data").String())
	case !hasFormat:
		return missing(at.child("format").String())
	}
	return nil
}

// videoFrames reads Model Studio's "video": an array of frame image URLs.
func (p *parser) videoFrames(at path) error {
	vat := at.child("video")
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Array {
		return typeErr(vat, "an array of strings", p.got())
	}
	n := 0
	err = p.d.Array(func(f int) error {
		n++
		frame := func() path { return at.child("video[" + strconv.Itoa(f) + "]") } // only on error
		k, err := p.d.Peek()
		if err != nil {
			return err
		}
		if k != jsonscan.String {
			return typeErr(frame(), "a string", p.got())
		}
		raw, esc, err := p.d.ReadRawString()
		if err != nil {
			return err
		}
		if err := checkURL(path{}, raw, esc, "image/", false); err != nil {
			return checkURL(frame(), raw, esc, "image/", false)
		}
		return nil
	})
	if err == nil && n == 0 {
		return emptyArray(vat)
	}
	return err
}

// checkURL accepts an http(s) URL or a base64 data URL whose media type
// starts with media (or is empty, when anyType).
func checkURL(at path, raw []byte, esc bool, media string, anyType bool) error {
	pre := raw
	var buf [80]byte
	if esc { // decode enough to see the scheme and media type
		pre = jsonscan.AppendUnescaped(buf[:0], raw[:min(len(raw), len(buf)-8)])
	}
	switch {
	case hasPrefixFold(pre, "https://") && len(raw) > len("https://"),
		hasPrefixFold(pre, "http://") && len(raw) > len("http://"):
		return nil
	case hasPrefixFold(pre, "data:"):
		comma := -1
		for i := 5; i < len(pre); i++ {
			if pre[i] == ',' {
				comma = i
				break
			}
		}
		if comma >= 0 {
			header := pre[5:comma]
			okType := hasPrefixFold(header, media) || (anyType && (len(header) == 0 || header[0] == ';'))
			okB64 := len(header) >= 7 && string(header[len(header)-7:]) == ";base64"
			payload := raw[comma+1:]
			if okType && okB64 && len(payload) > 0 && (esc || isBase64(payload)) {
				return nil
			}
		}
	}
	param := at.String()
	return apierror.Invalid(param, "Invalid '%s': expected an http(s) URL or a base64 data URL (data:%s...;base64,...).", param, media)
}

func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

var base64Alphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		t[c] = true
	}
	return t
}()

// isBase64 checks the standard or URL-safe alphabet with optional padding.
func isBase64(b []byte) bool {
	n := len(b)
	for n > 0 && len(b)-n < 2 && b[n-1] == '=' {
		n--
	}
	if n == 0 {
		return false
	}
	for _, c := range b[:n] {
		if !base64Alphabet[c] {
			return false
		}
	}
	return true
}

// toolCalls reads an assistant message's tool_calls and returns how many.
func (p *parser) toolCalls(at path) (int, error) {
	n := 0
	err := p.optArray(at, func(c int) error {
		n++
		cat := at.index(c)
		var hasType, hasID, hasFunc bool
		err := p.reqObject(cat, func(key []byte) error {
			switch string(key) {
			case "type":
				if again(&hasType) {
					return duplicate(cat, key)
				}
				raw, _, err := p.reqString(cat.child("type"))
				if err == nil && !jsonscan.Equal(raw, "function") {
					return badValue(cat.child("type"), raw, "'function'")
				}
				return err
			case "id":
				if again(&hasID) {
					return duplicate(cat, key)
				}
				_, _, err := p.reqString(cat.child("id"))
				return err
			case "function":
				if again(&hasFunc) {
					return duplicate(cat, key)
				}
				_, err := p.function(cat.child("function"), false)
				return err
			}
			return nil
		})
		if err == nil && !hasFunc {
			return missing(cat.child("function").String())
		}
		return err
	})
	return n, err
}

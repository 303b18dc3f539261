package request

import (
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// tools reads the tools array: function tools with a name each.
func (p *parser) tools() error {
	at := top("tools")
	return p.optArray(at, func(i int) error {
		tat := at.index(i)
		k, err := p.d.Peek()
		if err != nil {
			return err
		}
		if k != jsonscan.Object {
			return typeErr(tat, "an object", p.got())
		}
		return p.typedFunction(tat, true)
	})
}

// function reads {"name", "description", "parameters", "strict"} (a tool
// definition, full) or {"name", "arguments"} (a tool call or tool_choice).
func (p *parser) function(at path, full bool) error {
	hasName := false
	err := p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "name":
			hasName = true
			raw, esc, err := p.reqString(at.child("name"))
			if err == nil && full && !esc && !validFunctionName(raw) {
				param := at.child("name").String()
				return apierror.Invalid(param, "Invalid '%s': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", param)
			}
			return err
		case "description":
			_, _, err := p.optString(at.child("description"))
			return err
		case "arguments":
			_, _, err := p.optString(at.child("arguments"))
			return err
		case "parameters":
			return p.optObject(at.child("parameters"), nil)
		case "strict":
			_, _, err := p.optBool(at.child("strict"))
			return err
		}
		return nil
	})
	if err == nil && !hasName {
		return missing(at.child("name").String())
	}
	return err
}

func validFunctionName(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// toolChoice reads "none" | "auto" | "required" | {"type":"function","function":{"name"}}.
func (p *parser) toolChoice() error {
	at := top("tool_choice")
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	switch k {
	case jsonscan.Null:
		return p.d.ReadNull()
	case jsonscan.String:
		raw, _, err := p.d.ReadRawString()
		if err == nil && !oneOf(raw, "none", "auto", "required") {
			return badValue(at, raw, "'none', 'auto', and 'required'")
		}
		return err
	case jsonscan.Object:
		return p.typedFunction(at, false)
	}
	return typeErr(at, "one of a string or an object", p.got())
}

// responseFormat reads {"type": "text" | "json_object" | "json_schema", "json_schema": {...}}.
func (p *parser) responseFormat() error {
	at := top("response_format")
	if k, err := p.d.Peek(); err != nil || k == jsonscan.Null {
		if err != nil {
			return err
		}
		return p.d.ReadNull()
	}
	var typRaw []byte
	var hasType, hasSchema bool
	err := p.optObject(at, func(key []byte) error {
		switch string(key) {
		case "type":
			raw, _, err := p.reqString(at.child("type"))
			if err == nil && !oneOf(raw, "text", "json_object", "json_schema") {
				return badValue(at.child("type"), raw, "'text', 'json_object', and 'json_schema'")
			}
			typRaw, hasType = raw, true
			return err
		case "json_schema":
			hasSchema = true
			sat := at.child("json_schema")
			hasName := false
			err := p.reqObject(sat, func(key []byte) error {
				switch string(key) {
				case "name":
					hasName = true
					_, _, err := p.reqString(sat.child("name"))
					return err
				case "schema":
					return p.optObject(sat.child("schema"), nil)
				case "strict":
					_, _, err := p.optBool(sat.child("strict"))
					return err
				case "description":
					_, _, err := p.optString(sat.child("description"))
					return err
				}
				return nil
			})
			if err == nil && !hasName {
				return missing("response_format.json_schema.name")
			}
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !hasType {
		return missing("response_format.type")
	}
	if jsonscan.Equal(typRaw, "json_schema") && !hasSchema {
		return missing("response_format.json_schema")
	}
	return nil
}

// modalities reads ["text", "audio"].
func (p *parser) modalities() error {
	at := top("modalities")
	return p.optArray(at, func(i int) error {
		raw, _, err := p.reqString(at.index(i))
		if err != nil {
			return err
		}
		switch {
		case jsonscan.Equal(raw, "text"):
			p.r.Modalities |= catalog.Modalities(catalog.Text)
		case jsonscan.Equal(raw, "audio"):
			p.r.Modalities |= catalog.Modalities(catalog.Audio)
			p.r.AudioRequested = true
		default:
			return badValue(at.index(i), raw, "'text' and 'audio'")
		}
		return nil
	})
}

// audio reads the audio output options {"voice", "format"}.
func (p *parser) audio() error {
	at := top("audio")
	if k, err := p.d.Peek(); err != nil || k == jsonscan.Null {
		if err != nil {
			return err
		}
		return p.d.ReadNull()
	}
	var hasVoice, hasFormat bool
	err := p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "voice":
			hasVoice = true
			_, _, err := p.reqString(at.child("voice"))
			return err
		case "format":
			hasFormat = true
			_, _, err := p.reqString(at.child("format"))
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case !hasVoice:
		return missing("audio.voice")
	case !hasFormat:
		return missing("audio.format")
	}
	p.hasAudio, p.r.AudioRequested = true, true
	return nil
}

// typedFunction reads the object {"type":"function","function":{…}} at at,
// as tools[i] (full: the whole function definition) and tool_choice use it.
func (p *parser) typedFunction(at path, full bool) error {
	var hasType, hasFunc bool
	err := p.d.Object(func(key []byte) error {
		switch string(key) {
		case "type":
			hasType = true
			raw, _, err := p.reqString(at.child("type"))
			if err == nil && !jsonscan.Equal(raw, "function") {
				return badValue(at.child("type"), raw, "'function'")
			}
			return err
		case "function":
			hasFunc = true
			return p.function(at.child("function"), full)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case !hasType:
		return missing(at.child("type").String())
	case !hasFunc:
		return missing(at.child("function").String())
	}
	return nil
}

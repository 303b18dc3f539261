package request

import (
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// tools reads the tools array, function tools with a name each, and
// returns how many.
func (p *parser) tools() (int, error) {
	at := top("tools")
	n := 0
	err := p.optArray(at, func(i int) error {
		n++
		tat := at.index(i)
		k, err := p.d.Peek()
		if err != nil {
			return err
		}
		if k != jsonscan.Object {
			return typeErr(tat, "an object", p.got())
		}
		_, err = p.typedFunction(tat, true)
		return err
	})
	return n, err
}

// function reads {"name", "description", "parameters", "strict"} (a tool
// definition, full) or {"name", "arguments"} (a tool call or tool_choice),
// and returns the name (raw).
func (p *parser) function(at path, full bool) (name []byte, err error) {
	var saw struct{ name, description, arguments, parameters, strict bool }
	err = p.reqObject(at, func(key []byte) error {
		switch string(key) {
		case "name":
			if again(&saw.name) {
				return duplicate(at, key)
			}
			raw, esc, err := p.reqString(at.child("name"))
			if err == nil && full && !validFunctionName(raw, esc) {
				param := at.child("name").String()
				return apierror.Invalid(param, "Invalid '%s': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", param)
			}
			name = raw
			return err
		case "description":
			if again(&saw.description) {
				return duplicate(at, key)
			}
			_, _, err := p.optString(at.child("description"))
			return err
		case "arguments":
			if again(&saw.arguments) {
				return duplicate(at, key)
			}
			_, _, err := p.optString(at.child("arguments"))
			return err
		case "parameters":
			if again(&saw.parameters) {
				return duplicate(at, key)
			}
			return p.optObject(at.child("parameters"), nil)
		case "strict":
			if again(&saw.strict) {
				return duplicate(at, key)
			}
			_, _, err := p.optBool(at.child("strict"))
			return err
		}
		return nil
	})
	if err == nil && !saw.name {
		return nil, missing(at.child("name").String())
	}
	return name, err
}

// validFunctionName checks raw string contents against ^[a-zA-Z0-9_-]{1,64}$.
func validFunctionName(b []byte, escaped bool) bool {
	if escaped {
		var buf [64 * 6]byte // 64 characters as \uXXXX
		b = unescapeShort(buf[:], b)
	}
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
// Whether tools allow it is checked at the end (checkToolChoice): tools
// may come later in the body.
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
		p.choosesTool = !jsonscan.Equal(raw, "none")
		return err
	case jsonscan.Object:
		name, err := p.typedFunction(at, false)
		p.choosesTool, p.toolChoiceFor = true, name
		return err
	}
	return typeErr(at, "one of a string or an object", p.got())
}

// checkToolChoice rejects, as OpenAI does, a tool_choice other than none
// without tools, and one naming a function that is not among them.
func (p *parser) checkToolChoice() error {
	if !p.choosesTool {
		return nil
	}
	if !p.hasTools {
		return apierror.Invalid("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
	}
	if p.toolChoiceFor != nil && !p.hasTool(p.toolChoiceFor) {
		return apierror.Invalid("tool_choice", "Invalid value for 'tool_choice': function '%s' is not in 'tools'.", jsonscan.AppendUnescaped(nil, p.toolChoiceFor))
	}
	return nil
}

// hasTool reports whether the tools array, parsed and valid, defines the
// function name (raw). It reads the array again: only a request that names
// a function pays for it.
func (p *parser) hasTool(name []byte) bool {
	d := jsonscan.NewDecoder(p.d.Data()[p.toolsSpan[0]:p.toolsSpan[1]])
	found := false
	_ = d.Array(func(int) error {
		return d.Object(func(key []byte) error {
			if string(key) != "function" {
				return nil
			}
			return d.Object(func(key []byte) error {
				if string(key) != "name" {
					return nil
				}
				raw, _, err := d.ReadRawString()
				found = found || jsonscan.EqualRaw(raw, name)
				return err
			})
		})
	})
	return found
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
			if again(&hasType) {
				return duplicate(at, key)
			}
			raw, _, err := p.reqString(at.child("type"))
			if err == nil && !oneOf(raw, "text", "json_object", "json_schema") {
				return badValue(at.child("type"), raw, "'text', 'json_object', and 'json_schema'")
			}
			typRaw = raw
			return err
		case "json_schema":
			if again(&hasSchema) {
				return duplicate(at, key)
			}
			sat := at.child("json_schema")
			var saw struct{ name, schema, strict, description bool }
			err := p.reqObject(sat, func(key []byte) error {
				switch string(key) {
				case "name":
					if again(&saw.name) {
						return duplicate(sat, key)
					}
					_, _, err := p.reqString(sat.child("name"))
					return err
				case "schema":
					if again(&saw.schema) {
						return duplicate(sat, key)
					}
					return p.optObject(sat.child("schema"), nil)
				case "strict":
					if again(&saw.strict) {
						return duplicate(sat, key)
					}
					_, _, err := p.optBool(sat.child("strict"))
					return err
				case "description":
					if again(&saw.description) {
						return duplicate(sat, key)
					}
					_, _, err := p.optString(sat.child("description"))
					return err
				}
				return nil
			})
			if err == nil && !saw.name {
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
	p.r.JSONOut = !jsonscan.Equal(typRaw, "text")
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
			if again(&hasVoice) {
				return duplicate(at, key)
			}
			_, _, err := p.reqString(at.child("voice"))
			return err
		case "format":
			if again(&hasFormat) {
				return duplicate(at, key)
			}
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
// as tools[i] (full: the whole function definition) and tool_choice use it,
// and returns the function's name (raw).
func (p *parser) typedFunction(at path, full bool) (name []byte, err error) {
	var hasType, hasFunc bool
	err = p.members(at, func(key []byte) error {
		switch string(key) {
		case "type":
			if again(&hasType) {
				return duplicate(at, key)
			}
			raw, _, err := p.reqString(at.child("type"))
			if err == nil && !jsonscan.Equal(raw, "function") {
				return badValue(at.child("type"), raw, "'function'")
			}
			return err
		case "function":
			if again(&hasFunc) {
				return duplicate(at, key)
			}
			var err error
			name, err = p.function(at.child("function"), full)
			return err
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case !hasType:
		return nil, missing(at.child("type").String())
	case !hasFunc:
		return nil, missing(at.child("function").String())
	}
	return name, nil
}

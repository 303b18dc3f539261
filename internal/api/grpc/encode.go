package grpcapi

import (
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// A request message becomes the JSON body the HTTP API takes, written by
// hand into a pooled buffer: the body is then parsed, checked and
// forwarded as the bytes of an HTTP body are, so both front ends serve one
// request the same way. Keys come in the message's field order, then
// extra's, sorted (as are every map's and Struct's keys): a request sent
// twice is the same bytes twice, for the cache keys and prefix affinity.

// enc appends one JSON document. The first error (a number JSON cannot
// write, an extra key the call decides) stops it.
type enc struct {
	b   []byte
	err error
}

// sep writes the comma before a member or an element, unless it is the
// first of its object or array.
func (e *enc) sep() {
	if n := len(e.b); n > 0 {
		if c := e.b[n-1]; c != '{' && c != '[' {
			e.b = append(e.b, ',')
		}
	}
}

// key writes the name of the next member; k needs no escaping.
func (e *enc) key(k string) {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) open(k string) {
	e.key(k)
	e.b = append(e.b, '{')
}

func (e *enc) openArray(k string) {
	e.key(k)
	e.b = append(e.b, '[')
}

func (e *enc) close() { e.b = append(e.b, '}') }

func (e *enc) closeArray() { e.b = append(e.b, ']') }

func (e *enc) str(k, v string) {
	e.key(k)
	e.b = jsonscan.AppendString(e.b, v)
}

// strOmit writes a string member unless it is empty (unset in proto3).
func (e *enc) strOmit(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

func (e *enc) optStr(k string, v *string) {
	if v != nil {
		e.str(k, *v)
	}
}

func (e *enc) elemStr(v string) {
	e.sep()
	e.b = jsonscan.AppendString(e.b, v)
}

func (e *enc) boolean(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

func (e *enc) optBool(k string, v *bool) {
	if v != nil {
		e.boolean(k, *v)
	}
}

func (e *enc) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *enc) optInt64(k string, v *int64) {
	if v != nil {
		e.int(k, *v)
	}
}

func (e *enc) optInt32(k string, v *int32) {
	if v != nil {
		e.int(k, int64(*v))
	}
}

// number writes a number member; param names it in the error for a value
// JSON has no number for.
func (e *enc) number(k string, v float64, param string) {
	e.key(k)
	e.float(v, param)
}

func (e *enc) optNumber(k string, v *float64) {
	if v != nil {
		e.number(k, *v, k)
	}
}

// float writes v as encoding/json would: integers without a fraction, the
// shortest form that reads back the same, exponents only far from 1.
func (e *enc) float(v float64, param string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		e.fail(apierror.Invalid(param, "Invalid '%s': %v is not a JSON number.", param, v))
		e.b = append(e.b, '0') // keeps the document whole until the error is seen
		return
	}
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	start := len(e.b)
	e.b = strconv.AppendFloat(e.b, v, format, -1, 64)
	if format == 'e' { // 1e-07 → 1e-7, as encoding/json writes it
		if n := len(e.b); n-start >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

func (e *enc) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// biases writes a map of token ids to numbers (logit_bias), keys sorted.
func (e *enc) biases(k string, m map[string]float64) {
	if len(m) == 0 {
		return
	}
	e.open(k)
	for _, id := range sortedKeys(m) {
		e.sep()
		e.b = jsonscan.AppendString(e.b, id)
		e.b = append(e.b, ':')
		e.float(m[id], k+"."+id)
	}
	e.close()
}

// strings writes a map of strings (metadata), keys sorted.
func (e *enc) strings(k string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	e.open(k)
	for _, name := range sortedKeys(m) {
		e.sep()
		e.b = jsonscan.AppendString(e.b, name)
		e.b = append(e.b, ':')
		e.b = jsonscan.AppendString(e.b, m[name])
	}
	e.close()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// object writes a Struct member (a JSON schema, a function's parameters);
// a nil Struct is left out. at is where it is, for errors.
func (e *enc) object(k string, s *structpb.Struct, at *where) {
	if s == nil {
		return
	}
	e.key(k)
	e.structure(s, at)
}

// where is a path into a request, rendered only for an error: messages[2]
// .content[0], extra.chat_template_kwargs.
type where struct {
	up  *where
	key string // "" with index
	i   int
}

// String renders the path as a parameter is named in errors.
func (w *where) String() string {
	if w == nil {
		return ""
	}
	s := w.up.String()
	if w.key == "" {
		return s + "[" + strconv.Itoa(w.i) + "]"
	}
	if s == "" {
		return w.key
	}
	return s + "." + w.key
}

// structure writes s as a JSON object, keys sorted.
func (e *enc) structure(s *structpb.Struct, at *where) {
	e.b = append(e.b, '{')
	for _, k := range sortedKeys(s.GetFields()) {
		e.sep()
		e.b = jsonscan.AppendString(e.b, k)
		e.b = append(e.b, ':')
		e.value(s.Fields[k], &where{up: at, key: k})
	}
	e.close()
}

// value writes one Struct value, at at.
func (e *enc) value(v *structpb.Value, at *where) {
	switch x := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0) {
			e.float(x.NumberValue, at.String()) // fails, naming the value
			return
		}
		e.float(x.NumberValue, "")
	case *structpb.Value_StringValue:
		e.b = jsonscan.AppendString(e.b, x.StringValue)
	case *structpb.Value_BoolValue:
		e.b = strconv.AppendBool(e.b, x.BoolValue)
	case *structpb.Value_StructValue:
		e.structure(x.StructValue, at)
	case *structpb.Value_ListValue:
		e.b = append(e.b, '[')
		for i, el := range x.ListValue.GetValues() {
			e.sep()
			e.value(el, &where{up: at, i: i})
		}
		e.closeArray()
	default: // NullValue, or no kind set
		e.b = append(e.b, "null"...)
	}
}

// extra merges a request's extra parameters into its top level, keys
// sorted. A key that repeats a field is left for the parser to reject as a
// duplicate, naming it; "stream" is the call's to decide.
func (e *enc) extra(s *structpb.Struct) {
	for _, k := range sortedKeys(s.GetFields()) {
		if k == "stream" {
			e.fail(apierror.Invalid("extra.stream", "Invalid 'extra.stream': the call decides whether the answer streams (StreamChatCompletion streams, the others do not)."))
			return
		}
		e.sep()
		e.b = jsonscan.AppendString(e.b, k)
		e.b = append(e.b, ':')
		e.value(s.Fields[k], &where{up: &where{key: "extra"}, key: k})
	}
}

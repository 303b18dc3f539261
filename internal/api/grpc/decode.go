package grpcapi

import (
	"math"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/jsonscan"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// An answer's JSON (a whole answer, or one event of a stream) is read into
// its message by hand, in one pass over the bytes, with no reflection and
// no intermediate values: decode_bench_test.go measured this against
// protojson and encoding/json (docs/grpc.md has the figures). Keys the
// messages do not name are skipped, as are values of a shape a field does
// not take (null everywhere, a string where a number was expected): an
// engine's additions never fail an answer that has what the client needs.

// reader reads one JSON document.
type reader struct {
	d       jsonscan.Decoder
	scratch []byte // unescapes strings before they are copied out
}

// reset makes r read data, keeping its scratch buffer.
func (r *reader) reset(data []byte) { r.d = jsonscan.NewDecoder(data) }

// is reports whether the next value is of kind k; any other value is
// skipped (false, nil).
func (r *reader) is(k jsonscan.Kind) (bool, error) {
	got, err := r.d.Peek()
	if err != nil {
		return false, err
	}
	if got == k {
		return true, nil
	}
	_, err = r.d.Skip()
	return false, err
}

// str reads a string; any other value reads "".
func (r *reader) str() (string, error) {
	return r.same("")
}

// same is str reusing prev when the string is prev: the id, object and
// model of every chunk of a stream are one string each.
func (r *reader) same(prev string) (string, error) {
	if ok, err := r.is(jsonscan.String); !ok {
		return "", err
	}
	raw, esc, err := r.d.ReadRawString()
	if err != nil {
		return "", err
	}
	if esc {
		r.scratch = jsonscan.AppendUnescaped(r.scratch[:0], raw)
		raw = r.scratch
	}
	if string(raw) == prev {
		return prev, nil
	}
	if !utf8.Valid(raw) {
		return validUTF8(raw), nil
	}
	return string(raw), nil
}

// validUTF8 is b with each invalid byte read as U+FFFD: protobuf strings
// must be valid UTF-8, and an engine's bytes may not be.
func validUTF8(b []byte) string { return string([]rune(string(b))) }

// optStr reads a string that may be null (nil).
func (r *reader) optStr() (*string, error) {
	k, err := r.d.Peek()
	if err != nil || k != jsonscan.String {
		_, err := r.is(jsonscan.String)
		return nil, err
	}
	s, err := r.str()
	return &s, err
}

// integer reads an integer (a number with a fraction is truncated); any
// other value reads 0.
func (r *reader) integer() (int64, error) {
	if ok, err := r.is(jsonscan.Number); !ok {
		return 0, err
	}
	lit, err := r.d.ReadNumber()
	if err != nil {
		return 0, err
	}
	if n, err := jsonscan.ParseInt(lit); err == nil {
		return n, nil
	}
	f, _ := jsonscan.ParseFloat(lit)
	return int64(f), nil
}

func (r *reader) int32() (int32, error) {
	n, err := r.integer()
	return int32(n), err
}

// optInt32 reads an integer that may be absent or null (nil).
func (r *reader) optInt32() (*int32, error) {
	k, err := r.d.Peek()
	if err != nil || k != jsonscan.Number {
		_, err := r.is(jsonscan.Number)
		return nil, err
	}
	n, err := r.int32()
	return &n, err
}

// float reads a number; null reads NaN (a completion's echoed first token
// has no log probability), any other value 0.
func (r *reader) float() (float64, error) {
	k, err := r.d.Peek()
	if err != nil {
		return 0, err
	}
	switch k {
	case jsonscan.Number:
		lit, err := r.d.ReadNumber()
		if err != nil {
			return 0, err
		}
		f, _ := jsonscan.ParseFloat(lit)
		return f, nil
	case jsonscan.Null:
		return math.NaN(), r.d.ReadNull()
	}
	_, err = r.d.Skip()
	return 0, err
}

// object reads an object member by member (fn as for Decoder.Object);
// any other value, null included, is skipped.
func (r *reader) object(fn func(key []byte) error) error {
	if ok, err := r.is(jsonscan.Object); !ok {
		return err
	}
	return r.d.Object(fn)
}

// array reads an array element by element; any other value is skipped.
func (r *reader) array(fn func(i int) error) error {
	if ok, err := r.is(jsonscan.Array); !ok {
		return err
	}
	return r.d.Array(fn)
}

// strs reads an array of strings.
func (r *reader) strs(out *[]string) error {
	return r.array(func(int) error {
		s, err := r.str()
		*out = append(*out, s)
		return err
	})
}

// bytes reads a token's bytes: an array of integers.
func (r *reader) bytes(out *[]int32) error {
	return r.array(func(int) error {
		n, err := r.int32()
		*out = append(*out, n)
		return err
	})
}

// usage reads a usage object into u (nil: a new one), merged as protobuf
// merges a message sent twice; null or another value leaves u as it is.
func (r *reader) usage(u *pb.Usage) (*pb.Usage, error) {
	k, err := r.d.Peek()
	if err != nil || k != jsonscan.Object {
		_, err := r.is(jsonscan.Object)
		return u, err
	}
	if u == nil {
		u = new(pb.Usage)
	}
	err = r.d.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "prompt_tokens":
			u.PromptTokens, err = r.integer()
		case "completion_tokens":
			u.CompletionTokens, err = r.integer()
		case "total_tokens":
			u.TotalTokens, err = r.integer()
		case "prompt_tokens_details":
			err = r.object(func(key []byte) error {
				if u.PromptTokensDetails == nil {
					u.PromptTokensDetails = new(pb.PromptTokensDetails)
				}
				d := u.PromptTokensDetails
				var err error
				switch string(key) {
				case "cached_tokens":
					d.CachedTokens, err = r.integer()
				case "audio_tokens":
					d.AudioTokens, err = r.integer()
				}
				return err
			})
		case "completion_tokens_details":
			err = r.object(func(key []byte) error {
				if u.CompletionTokensDetails == nil {
					u.CompletionTokensDetails = new(pb.CompletionTokensDetails)
				}
				d := u.CompletionTokensDetails
				var err error
				switch string(key) {
				case "reasoning_tokens":
					d.ReasoningTokens, err = r.integer()
				case "audio_tokens":
					d.AudioTokens, err = r.integer()
				case "accepted_prediction_tokens":
					d.AcceptedPredictionTokens, err = r.integer()
				case "rejected_prediction_tokens":
					d.RejectedPredictionTokens, err = r.integer()
				}
				return err
			})
		}
		return err
	})
	return u, err
}

// end checks that only whitespace follows the document.
func (r *reader) end() error { return r.d.End() }

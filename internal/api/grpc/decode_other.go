package grpcapi

import (
	"net/http"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/jsonscan"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// decodeCompletion reads a text_completion answer into out.
func decodeCompletion(data []byte, out *pb.CompletionResponse) error {
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
				c := new(pb.CompletionChoice)
				out.Choices = append(out.Choices, c)
				return r.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "index":
						c.Index, err = r.int32()
					case "text":
						c.Text, err = r.str()
					case "logprobs":
						c.Logprobs, err = r.completionLogprobs()
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
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.end()
}

// completionLogprobs reads a completion choice's logprobs; null is nil.
func (r *reader) completionLogprobs() (*pb.CompletionLogprobs, error) {
	var lp *pb.CompletionLogprobs
	err := r.object(func(key []byte) error {
		if lp == nil {
			lp = new(pb.CompletionLogprobs)
		}
		switch string(key) {
		case "tokens":
			return r.strs(&lp.Tokens)
		case "token_logprobs":
			return r.array(func(int) error {
				f, err := r.float()
				lp.TokenLogprobs = append(lp.TokenLogprobs, f)
				return err
			})
		case "top_logprobs":
			return r.array(func(int) error {
				alt := &pb.TokenAlternatives{}
				lp.TopLogprobs = append(lp.TopLogprobs, alt)
				return r.object(func(key []byte) error {
					if alt.Logprobs == nil {
						alt.Logprobs = make(map[string]float64)
					}
					f, err := r.float()
					alt.Logprobs[string(jsonscan.AppendUnescaped(nil, key))] = f
					return err
				})
			})
		case "text_offset":
			return r.bytes(&lp.TextOffset)
		}
		return nil
	})
	return lp, err
}

// decodeEmbedding reads an embeddings answer into out.
func decodeEmbedding(data []byte, out *pb.EmbeddingResponse) error {
	var r reader
	r.reset(data)
	err := r.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "object":
			out.Object, err = r.str()
		case "model":
			out.Model, err = r.str()
		case "usage":
			out.Usage, err = r.usage(out.Usage)
		case "data":
			err = r.array(func(int) error {
				e := new(pb.Embedding)
				out.Data = append(out.Data, e)
				return r.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "object":
						e.Object, err = r.same("embedding")
					case "index":
						e.Index, err = r.int32()
					case "embedding":
						err = r.embedding(e)
					}
					return err
				})
			})
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.end()
}

// embedding reads an embedding: an array of numbers, or base64 of
// little-endian float32s (encoding_format base64), kept as it came.
func (r *reader) embedding(e *pb.Embedding) error {
	k, err := r.d.Peek()
	if err != nil {
		return err
	}
	if k == jsonscan.String {
		s, err := r.str()
		e.Embedding = &pb.Embedding_Base64{Base64: s}
		return err
	}
	v := &pb.Vector{}
	e.Embedding = &pb.Embedding_Floats{Floats: v}
	return r.array(func(i int) error {
		if i == 0 {
			v.Values = make([]float32, 0, 256)
		}
		f, err := r.float()
		v.Values = append(v.Values, float32(f))
		return err
	})
}

// eventError reads an error event's data ({"error": {...}}) into the
// error the client is told: the status is the event's code when that is
// an HTTP error status (vLLM sends 400, 500…), else fallback.
func eventError(data []byte, fallback int) *apierror.Error {
	e := &apierror.Error{Status: fallback, Upstream: true}
	var r reader
	r.reset(data)
	_ = r.object(func(key []byte) error {
		if string(key) != "error" {
			return nil
		}
		return r.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "message":
				e.Message, err = r.str()
			case "type":
				e.Type, err = r.str()
			case "param":
				e.Param, err = r.str()
			case "code":
				k, perr := r.d.Peek()
				if perr != nil {
					return perr
				}
				if k == jsonscan.Number {
					if n, _ := r.integer(); n >= 400 && n <= 599 {
						e.Status = int(n)
					}
					return nil
				}
				e.Code, err = r.str()
			}
			return err
		})
	})
	if e.Message == "" {
		e.Message = "The upstream failed mid-stream (HTTP " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ")."
	}
	if e.Type == "" {
		e.Type = apierror.TypeFor(e.Status)
	}
	return e
}

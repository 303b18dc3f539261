package grpcapi

import (
	"strconv"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// appendCompletion appends the JSON body of r to b.
func appendCompletion(b []byte, r *pb.CompletionRequest) ([]byte, error) {
	e := enc{b: append(b, '{')}
	e.strOmit("model", r.Model) // unset: the parser says it is missing
	e.input("prompt", r.Prompt)
	e.optInt32("best_of", r.BestOf)
	e.optBool("echo", r.Echo)
	e.optNumber("frequency_penalty", r.FrequencyPenalty)
	e.biases("logit_bias", r.LogitBias)
	e.optInt32("logprobs", r.Logprobs)
	e.optInt64("max_tokens", r.MaxTokens)
	e.optInt32("n", r.N)
	e.optNumber("presence_penalty", r.PresencePenalty)
	e.optInt64("seed", r.Seed)
	e.stop(r.Stop)
	e.optStr("suffix", r.Suffix)
	e.optNumber("temperature", r.Temperature)
	e.optNumber("top_p", r.TopP)
	e.strOmit("user", r.User)
	e.extra(r.Extra)
	e.close()
	return e.b, e.err
}

// appendEmbedding appends the JSON body of r to b.
func appendEmbedding(b []byte, r *pb.EmbeddingRequest) ([]byte, error) {
	e := enc{b: append(b, '{')}
	e.strOmit("model", r.Model) // unset: the parser says it is missing
	e.input("input", r.Input)
	e.strOmit("encoding_format", r.EncodingFormat)
	e.optInt32("dimensions", r.Dimensions)
	e.strOmit("user", r.User)
	e.extra(r.Extra)
	e.close()
	return e.b, e.err
}

// input writes a prompt or an input: a string, strings, token ids, or
// lists of them. Unset, it is left out (the parser names it as missing).
func (e *enc) input(k string, in *pb.Input) {
	switch x := in.GetInput().(type) {
	case *pb.Input_Text:
		e.str(k, x.Text)
	case *pb.Input_Texts:
		e.openArray(k)
		for _, t := range x.Texts.GetTexts() {
			e.elemStr(t)
		}
		e.closeArray()
	case *pb.Input_Tokens:
		e.openArray(k)
		e.tokens(x.Tokens.GetTokens())
		e.closeArray()
	case *pb.Input_TokenLists:
		e.openArray(k)
		for _, l := range x.TokenLists.GetLists() {
			e.sep()
			e.b = append(e.b, '[')
			e.tokens(l.GetTokens())
			e.closeArray()
		}
		e.closeArray()
	}
}

func (e *enc) tokens(ts []int32) {
	for _, t := range ts {
		e.sep()
		e.b = strconv.AppendInt(e.b, int64(t), 10)
	}
}

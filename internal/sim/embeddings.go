package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
)

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }

type embeddingBody struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// serveEmbeddings answers /v1/embeddings with deterministic unit vectors:
// each input's hash seeds a Gaussian vector that is then normalised. Inputs
// are costed at prefill_per_token but do not queue behind generation.
func (e *Engine) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	plan, err := e.dice.plan(r.Header)
	reqID := e.newID("embd-")
	if err != nil {
		writeError(w, plan.dialect, reqID, err)
		return
	}
	if e.isClosed() {
		writeError(w, plan.dialect, reqID, errClosed)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, plan.dialect, reqID, err)
		return
	}
	var b embeddingBody
	if err := json.Unmarshal(body, &b); err != nil {
		writeError(w, plan.dialect, reqID, malformed(err))
		return
	}
	if !e.knownModel(b.Model) {
		writeError(w, plan.dialect, reqID, modelNotFound(b.Model))
		return
	}
	inputs, err := completionPrompts(b.Input, nil)
	if err != nil {
		if ae, ok := err.(*apierror.Error); ok && ae.Param == "prompt" {
			ae = &apierror.Error{Status: ae.Status, Type: ae.Type, Param: "input", Message: "input must be a non-empty string, an array of strings, an array of tokens or an array of token arrays"}
			err = ae
		}
		writeError(w, plan.dialect, reqID, err)
		return
	}
	dims := e.p.EmbeddingDims
	if b.Dimensions != nil {
		if *b.Dimensions < 1 || *b.Dimensions > dims {
			writeError(w, plan.dialect, reqID, apierror.Invalid("dimensions", "dimensions must be between 1 and %d, got %d", dims, *b.Dimensions))
			return
		}
		dims = *b.Dimensions
	}
	if b.EncodingFormat != "" && b.EncodingFormat != "float" && b.EncodingFormat != "base64" {
		writeError(w, plan.dialect, reqID, apierror.Invalid("encoding_format", "encoding_format must be float or base64, got %q", b.EncodingFormat))
		return
	}
	total := 0
	for _, in := range inputs {
		if in.tokens > e.p.MaxModelLen {
			writeError(w, plan.dialect, reqID, overflowError(in.tokens, 0, e.p.MaxModelLen, "input"))
			return
		}
		total += in.tokens
	}
	if plan.failure(w, reqID, false) {
		return
	}
	if !e.wait(r.Context().Done(), e.p.PrefillPerToken*time.Duration(total)) {
		return
	}
	e.metrics.prompt.Add(float64(total))

	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	out := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: e.name}
	for i, in := range inputs {
		v := embedding(in.hash, dims)
		var emb any = v
		if b.EncodingFormat == "base64" {
			raw := make([]byte, 0, 4*len(v))
			for _, f := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(raw)
		}
		out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: emb})
	}
	out.Usage.PromptTokens, out.Usage.TotalTokens = total, total
	writeJSON(w, out)
}

// embedding is the unit vector of dims floats seeded by h.
func embedding(h uint64, dims int) []float32 {
	rng := rand.New(rand.NewPCG(h, h^0xda942042e4dd58b5))
	v := make([]float64, dims)
	norm := 0.0
	for i := range v {
		v[i] = rng.NormFloat64()
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	out := make([]float32, dims)
	for i := range v {
		out[i] = float32(v[i] / norm)
	}
	return out
}

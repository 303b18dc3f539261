package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Error dialects: the shapes real engines write their errors in.
const (
	DialectVLLM        = "vllm"        // vLLM >= 0.10.1: nested, code is the status
	DialectVLLMLegacy  = "vllm-legacy" // vLLM before 0.10.1: flat, "object":"error"
	DialectOllama      = "ollama"      // {"error":"message"}
	DialectLlamaCpp    = "llamacpp"    // llama.cpp server, exceed_context_size_error
	DialectModelStudio = "modelstudio" // Alibaba Model Studio compatible mode
)

// Dialects lists the error dialects the simulator can speak.
func Dialects() []string {
	return []string{DialectVLLM, DialectVLLMLegacy, DialectOllama, DialectLlamaCpp, DialectModelStudio}
}

func validDialect(d string) bool {
	for _, x := range Dialects() {
		if x == d {
			return true
		}
	}
	return false
}

// contextOverflow is the cause of a max_model_len error; llama.cpp reports
// its numbers.
type contextOverflow struct {
	prompt, requested, maxLen int
}

func (c *contextOverflow) Error() string {
	return fmt.Sprintf("context overflow: %d tokens requested, %d allowed", c.requested, c.maxLen)
}

// overflowError is vLLM's 400 for a request longer than max_model_len.
func overflowError(prompt, completion, maxLen int, what string) *apierror.Error {
	e := apierror.Invalid("", "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the %s, %d in the completion). Please reduce the length of the %s or completion.",
		maxLen, prompt+completion, prompt, what, completion, what)
	e.Err = &contextOverflow{prompt: prompt, requested: prompt + completion, maxLen: maxLen}
	return e
}

// kvOverflow is the cause of a request that can never fit the KV cache:
// its prompt and its answer need more than the cache holds.
type kvOverflow struct {
	prompt, generated, capacity int
}

func (k *kvOverflow) Error() string {
	return fmt.Sprintf("KV cache overflow: %d tokens needed, %d held", k.prompt+k.generated, k.capacity)
}

// kvOverflowError is the 400 for a request that can never fit the KV
// cache. vLLM refuses to start with a max_model_len its cache cannot hold,
// so it never answers this; the message takes that refusal's words ("larger
// than the maximum number of tokens that can be stored in KV cache"), so a
// classifier keyed on them knows it. llama.cpp, whose KV cache is its
// context, answers it as a context overflow.
func kvOverflowError(prompt, generated, capacity int, what string) *apierror.Error {
	e := apierror.Invalid("", "This request needs %d KV-cache tokens (%d in the %s, %d generated), which is larger than the maximum number of tokens that can be stored in KV cache (%d).",
		prompt+generated, prompt, what, generated, capacity)
	e.Err = &kvOverflow{prompt: prompt, generated: generated, capacity: capacity}
	return e
}

// writeError renders err in the dialect, with the status it carries.
func writeError(w http.ResponseWriter, dialect, requestID string, err error) {
	status, b := errorBody(dialect, requestID, err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	setRetryAfter(h, apierror.From(err).RetryAfter)
	w.WriteHeader(status)
	w.Write(b)
}

// errorBody is err's status and JSON body (newline-terminated) in the dialect.
func errorBody(dialect, requestID string, err error) (int, []byte) {
	e := apierror.From(err)
	var body any
	switch dialect {
	case DialectVLLMLegacy:
		body = struct {
			Object  string  `json:"object"`
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    int     `json:"code"`
		}{"error", e.Message, vllmType(e.Status), nullable(e.Param), e.Status}
	case DialectOllama:
		body = struct {
			Error string `json:"error"`
		}{e.Message}
	case DialectLlamaCpp:
		type lerr struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Type    string `json:"type"`
			NPrompt int    `json:"n_prompt_tokens,omitempty"`
			NCtx    int    `json:"n_ctx,omitempty"`
		}
		le := lerr{Code: e.Status, Message: e.Message, Type: "invalid_request_error"}
		var co *contextOverflow
		var ko *kvOverflow
		switch {
		case errors.As(e, &co):
			le.Type = "exceed_context_size_error"
			le.Message = "the request exceeds the available context size, try increasing it"
			le.NPrompt, le.NCtx = co.prompt, co.maxLen
		case errors.As(e, &ko):
			le.Type = "exceed_context_size_error"
			le.Message = "the request exceeds the available context size, try increasing it"
			le.NPrompt, le.NCtx = ko.prompt, ko.capacity
		case e.Status == http.StatusServiceUnavailable:
			le.Type = "unavailable_error"
		case e.Status >= 500:
			le.Type = "server_error"
		case e.Status == http.StatusNotFound:
			le.Type = "not_found_error"
		}
		body = struct {
			Error lerr `json:"error"`
		}{le}
	case DialectModelStudio:
		type merr struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		}
		body = struct {
			Error     merr   `json:"error"`
			RequestID string `json:"request_id"`
		}{merr{e.Message, apierror.TypeFor(e.Status), nullable(e.Param), modelStudioCode(e.Status)}, requestID}
	default: // vllm
		type verr struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    int     `json:"code"`
		}
		body = struct {
			Error verr `json:"error"`
		}{verr{e.Message, vllmType(e.Status), nullable(e.Param), e.Status}}
	}
	b, _ := json.Marshal(body) // strings and ints only
	return e.Status, append(b, '\n')
}

// vllmType is the exception class name vLLM puts in "type".
func vllmType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequestError"
	case http.StatusNotFound:
		return "NotFoundError"
	case http.StatusTooManyRequests:
		return "RateLimitError"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableError"
	case http.StatusNotImplemented:
		return "NotImplementedError"
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "") + "Error"
}

// modelStudioCode is the string code Model Studio uses for a status.
func modelStudioCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "InvalidParameter"
	case http.StatusUnauthorized:
		return "InvalidApiKey"
	case http.StatusNotFound:
		return "ModelNotFound"
	case http.StatusTooManyRequests:
		return "Throttling"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	}
	if status >= 500 {
		return "InternalError"
	}
	return "InvalidParameter"
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

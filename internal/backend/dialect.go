package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Dialects: the engines whose error bodies NormalizeError understands.
const (
	DialectOpenAI      = "openai"
	DialectVLLM        = "vllm"
	DialectVLLMLegacy  = "vllm-legacy" // vLLM before 0.10.1: flat error objects
	DialectSGLang      = "sglang"
	DialectOllama      = "ollama"
	DialectLlamaCpp    = "llamacpp"
	DialectModelStudio = "modelstudio"
)

// CodeContextLength is the OpenAI code for a prompt longer than the context
// window; every dialect's version of that error is mapped to it.
const CodeContextLength = "context_length_exceeded"

// CodeContentFilter marks a request refused by the upstream's content filter.
const CodeContentFilter = "content_filter"

// KnownDialect reports whether NormalizeError has rules for name ("" is the
// default, openai).
func KnownDialect(name string) bool {
	switch name {
	case "", DialectOpenAI, DialectVLLM, DialectVLLMLegacy, DialectSGLang, DialectOllama, DialectLlamaCpp, DialectModelStudio:
		return true
	}
	return false
}

// wireFields are the error members any of the dialects use, nested under
// "error" or flat at the top level.
type wireFields struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Param   json.RawMessage `json:"param"`
	Code    json.RawMessage `json:"code"`
}

type wireBody struct {
	wireFields
	Error  json.RawMessage `json:"error"`
	Detail json.RawMessage `json:"detail"` // FastAPI's own errors (unknown route, 422)
}

// upstreamError is what was understood of an error body.
type upstreamError struct {
	message, typ, param, code string
}

// ErrorSource says where an upstream error came from, so that it reaches
// the client in terms the client knows.
type ErrorSource struct {
	Dialect    string // the engine's, see KnownDialect
	Deployment string // the deployment's name: for the logs, never shown
	Upstream   string // the engine's model name (upstream_model): never shown
	Public     string // the model name the client asked for, shown instead
}

// NormalizeError turns an upstream's non-2xx answer to a model endpoint
// into the OpenAI-shaped error the client sees, with Upstream set and the
// raw answer kept in Err for the logs. The engine's code, type and param
// are passed on; its message only sanitised (see sanitize). An answer that
// blames the gateway's own configuration (the engine refused its key, or
// does not know the model or path it was sent) becomes a 502
// deployment_misconfigured with a *MisconfiguredError in Err: the client
// did nothing wrong. NormalizeError never fails: a body it cannot read (an
// HTML page from a proxy, nothing at all) becomes a generic message with
// the upstream status.
func NormalizeError(src ErrorSource, status int, body []byte) *apierror.Error {
	if status < 400 || status > 599 {
		status = http.StatusBadGateway // 1xx/3xx here means a broken upstream
	}
	u, ok := parseError(body)
	e := &apierror.Error{
		Status:   status,
		Upstream: true,
		Err:      fmt.Errorf("upstream answered HTTP %d: %s", status, clip(body, 512)),
	}
	if !ok {
		e.Type = apierror.TypeFor(status)
		e.Message = fmt.Sprintf("upstream error: HTTP %d %s", status, http.StatusText(status))
		return misconfigured(e, src)
	}
	e.Message, e.Param = sanitize(u.message, src.Upstream, src.Public), u.param
	if e.Message == "" {
		e.Message = fmt.Sprintf("upstream error: HTTP %d %s", status, http.StatusText(status))
	}
	e.Type = mapType(u.typ, status)
	e.Code = u.code
	if src.Dialect == DialectModelStudio {
		applyModelStudio(e, u.code)
	}
	if isContextLength(u, e.Status) {
		e.Status, e.Type, e.Code = http.StatusBadRequest, apierror.TypeInvalidRequest, CodeContextLength
	} else if oom, tooLarge := outOfMemory(u.message); oom {
		// Not the client's fault whatever status the engine chose (the
		// simulator says 400, llama.cpp 500): 503, which clients retry.
		e.Status, e.Type, e.Code = http.StatusServiceUnavailable, apierror.TypeUnavailable, CodeOutOfMemory
		e.Err = &OverloadError{TooLarge: tooLarge, Cause: e.Err}
	}
	return misconfigured(e, src)
}

// outOfMemory recognises an engine that ran out of GPU memory or KV cache
// in its message: PyTorch's "CUDA out of memory" (vLLM, SGLang), Ollama's
// "requires more system memory" and "cudaMalloc failed: out of memory",
// llama.cpp's "failed to find free space in the KV cache" and "Context
// size has been exceeded" (a 500), SGLang's "KV cache pool is full", and
// the KV-cache
// capacity errors of vLLM and the simulator, which say the request can
// never fit (tooLarge).
func outOfMemory(message string) (oom, tooLarge bool) {
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "kv cache") || strings.Contains(m, "kv-cache"):
		for _, s := range []string{"holds only", "can be stored in kv cache", "larger than"} {
			if strings.Contains(m, s) {
				return true, true
			}
		}
		for _, s := range []string{"free space", "is full", "out of memory", "exhausted", "no space", "not enough"} {
			if strings.Contains(m, s) {
				return true, false
			}
		}
	case strings.Contains(m, "context size has been exceeded"):
		// llama.cpp, when a slot's share of the KV cache runs out
		// mid-answer (a prompt too long is a 400 of its own, seen before).
		return true, false
	case strings.Contains(m, "out of memory"), strings.Contains(m, "outofmemory"),
		strings.Contains(m, "insufficient memory"), strings.Contains(m, "more system memory"),
		strings.Contains(m, "not enough memory"), strings.Contains(m, "failed to allocate"):
		return true, false
	}
	return false, false
}

// misconfigured returns e, or in its place the gateway's own error when e
// says the deployment's configuration is wrong: the engine refused the
// gateway's key (401, 403; 407 from a proxy on the way) or knows no such
// model or path (404). Passed on as they are, those would tell the
// client's SDK that its own key or model name is wrong, and it would not
// try again.
func misconfigured(e *apierror.Error, src ErrorSource) *apierror.Error {
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired, http.StatusNotFound:
	default:
		return e
	}
	m := misconfiguredError(src, &MisconfiguredError{Deployment: src.Deployment, Status: e.Status, Cause: e.Err})
	m.Upstream = true
	return m
}

// misconfiguredError is the client's 502 for a deployment of src's
// model that is misconfigured; cause, for the logs, says how.
func misconfiguredError(src ErrorSource, cause *MisconfiguredError) *apierror.Error {
	model := src.Public
	if model == "" {
		model = "the requested model"
	}
	return &apierror.Error{
		Status:  http.StatusBadGateway,
		Type:    apierror.TypeServer,
		Code:    CodeDeploymentMisconfigured,
		Message: "The gateway could not use a deployment of " + model + ": it is misconfigured.",
		Err:     cause,
	}
}

// parseError reads any of the known shapes: nested {"error":{...}}, flat
// {"object":"error","message",...} or {"code","message"}, Ollama's
// {"error":"..."} and FastAPI's {"detail":...}.
func parseError(body []byte) (upstreamError, bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return upstreamError{}, false
	}
	var w wireBody
	if json.Unmarshal(body, &w) != nil {
		return upstreamError{}, false
	}
	f := w.wireFields
	switch {
	case len(w.Error) > 0 && w.Error[0] == '{':
		var n wireFields
		if json.Unmarshal(w.Error, &n) != nil {
			return upstreamError{}, false
		}
		f = n
	case len(w.Error) > 0 && w.Error[0] == '"':
		var s string
		if json.Unmarshal(w.Error, &s) != nil {
			return upstreamError{}, false
		}
		f = wireFields{Message: s}
	case len(w.Detail) > 0 && f.Message == "":
		f.Message = detailMessage(w.Detail)
	}
	if f.Message == "" && f.Type == "" && len(f.Code) == 0 {
		return upstreamError{}, false
	}
	return upstreamError{message: f.Message, typ: f.Type, param: jsonString(f.Param), code: jsonString(f.Code)}, true
}

// detailMessage reads FastAPI's "detail": a string, or a list of validation
// errors of which the first "msg" is kept.
func detailMessage(raw json.RawMessage) string {
	if s := jsonString(raw); s != "" {
		return s
	}
	var list []struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
		return list[0].Msg
	}
	return ""
}

// jsonString returns raw's value when it is a JSON string, else "" (numbers
// such as vLLM's "code":400 and nulls are dropped).
func jsonString(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// typeNames maps engine error type names, lower-cased without underscores,
// to OpenAI types.
var typeNames = map[string]string{
	"badrequesterror":          apierror.TypeInvalidRequest,
	"invalidrequesterror":      apierror.TypeInvalidRequest,
	"unprocessableentityerror": apierror.TypeInvalidRequest,
	"notsupportederror":        apierror.TypeInvalidRequest,
	"exceedcontextsizeerror":   apierror.TypeInvalidRequest,
	"conflicterror":            apierror.TypeInvalidRequest,
	"notfounderror":            apierror.TypeNotFound,
	"authenticationerror":      apierror.TypeAuthentication,
	"permissiondeniederror":    apierror.TypeAuthentication,
	"permissionerror":          apierror.TypeAuthentication,
	"ratelimiterror":           apierror.TypeRateLimit,
	"internalservererror":      apierror.TypeServer,
	"servererror":              apierror.TypeServer,
	"apierror":                 apierror.TypeServer,
	"serviceunavailableerror":  apierror.TypeUnavailable,
	"unavailableerror":         apierror.TypeUnavailable,
	"timeouterror":             apierror.TypeTimeout,
	"apitimeouterror":          apierror.TypeTimeout,
}

func mapType(typ string, status int) string {
	if t, ok := typeNames[squash(typ)]; ok {
		return t
	}
	return apierror.TypeFor(status)
}

// squash lower-cases s and drops underscores, so "BadRequestError" and
// "bad_request_error" meet.
func squash(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

// isContextLength recognises a prompt too long for the model in any dialect:
// llama.cpp's type, OpenAI's code, or the message wording of vLLM, SGLang,
// Ollama and Model Studio (only on a 4xx, where it is the client's prompt).
func isContextLength(u upstreamError, status int) bool {
	if squash(u.typ) == "exceedcontextsizeerror" || u.code == CodeContextLength {
		return true
	}
	if status < 400 || status >= 500 {
		return false
	}
	m := strings.ToLower(u.message)
	for _, s := range []string{"maximum context length", "context length", "context size", "context window", "range of input length"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// clip returns at most n bytes of b as a string, cut on a rune boundary.
func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "…"
}

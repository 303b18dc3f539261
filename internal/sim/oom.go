package sim

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Out of memory, as each dialect's engine reports it when a request runs
// the GPU or the KV cache out of memory before its first token. A gateway
// classifies these answers, so they are the engines' own, byte for byte
// where the source was read (the sim writes JSON compactly; vLLM's
// json.dumps puts a space after each ':' and ',', the same JSON):
//
//	dialect      status  body
//	vllm         500     (none: no body, no Content-Type)
//	vllm-legacy  500     (none)
//	llamacpp     500     {"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}
//	ollama       500     {"error":"llama runner process has terminated: cudaMalloc failed: out of memory"}
//	modelstudio  500     {"error":{"message":"An internal error has occured, please try again later or contact service support.","type":"server_error","param":null,"code":"InternalError"},"request_id":"<id>"}
//
// A vLLM stream has its 200 and SSE headers out before the engine fails
// (Starlette starts the response before the generator runs), so it carries
// one error event and then [DONE]:
//
//	vllm         data: {"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the root cause.","type":"InternalServerError","param":null,"code":500}}
//	vllm-legacy  data: {"error":{"object":"error","message":"EngineCore encountered an issue. See stack trace (above) for the root cause.","type":"BadRequestError","param":null,"code":400}}
//
// The other dialects answer a stream as they answer a whole request.
//
// Where the answers come from:
//
//   - vLLM (V1 engine, read in vllm/v1/engine/exceptions.py,
//     vllm/entrypoints/launcher.py, serving.py): a CUDA OOM in a forward
//     pass kills the EngineCore process, and every request in flight gets
//     EngineDeadError, "EngineCore encountered an issue. See stack trace
//     (above) for the root cause." "CUDA out of memory. Tried to allocate
//     …" is only in the server's log. A non-streaming chat request does not
//     catch it: the app's exception handler answers Response(status_code=500),
//     with no body, and stops the server (unless
//     VLLM_KEEP_ALIVE_ON_ENGINE_DEATH is set). A stream catches it in its
//     generator: since 0.10.1 create_error_response maps an exception that
//     is not a ValueError to InternalServerError/500 in the nested shape;
//     before, str(e) took the default BadRequestError/400, and the flat
//     error was wrapped in {"error": …}. vLLM never fails a request for a
//     full KV cache: it preempts and queues, and refuses at startup a
//     max_model_len its cache cannot hold ("… is larger than the maximum
//     number of tokens that can be stored in KV cache …").
//   - llama.cpp server (read in tools/server/server-context.cpp): when
//     llama_decode finds no free KV cells it logs "failed to find free
//     space in the KV cache", retries with halved batches, and at batch 1
//     fails every processing slot with "Context size has been exceeded."
//     (server_error, 500). A stream whose first result is an error is
//     answered as a non-streaming request.
//   - Ollama (from its users' reports): the runner dies and the API
//     answers 500 {"error":"llama runner process has terminated: cudaMalloc
//     failed: out of memory"}.
//   - SGLang (no dialect here): the scheduler raises "Prefill out of
//     memory. Try to lower your batch size." (or "Decode out of memory …")
//     and the server exits; clients see their connections drop, which
//     --cut-after models.
//   - Model Studio: not verified; best knowledge is a 500 InternalError in
//     its usual envelope, with the message above.

// errOOM marks an out-of-memory answer.
var errOOM = errors.New("out of memory (injected by the simulator)")

// vllmDeadMessage is vLLM's EngineDeadError message.
const vllmDeadMessage = "EngineCore encountered an issue. See stack trace (above) for the root cause."

// oomMessages are the messages of the dialects that answer out of memory
// with an error body.
var oomMessages = map[string]string{
	DialectLlamaCpp:    "Context size has been exceeded.",
	DialectOllama:      "llama runner process has terminated: cudaMalloc failed: out of memory",
	DialectModelStudio: "An internal error has occured, please try again later or contact service support.",
}

// writeOOM answers a request the way the dialect's engine reports running
// out of memory (see the table above).
func writeOOM(w http.ResponseWriter, dialect, requestID string, stream bool) {
	switch {
	case (dialect == DialectVLLM || dialect == DialectVLLMLegacy) && stream:
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		w.Write(append(vllmDeadEvent(dialect), "data: [DONE]\n\n"...))
	case dialect == DialectVLLM || dialect == DialectVLLMLegacy:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusInternalServerError)
	default:
		e := apierror.New(http.StatusInternalServerError, "", "%s", oomMessages[dialect])
		e.Err = errOOM
		writeError(w, dialect, requestID, e)
	}
}

// vllmDeadEvent is the SSE error event a vLLM stream gets when its engine
// dies: vLLM's error body (errorBody), a 500 InternalServerError; before
// 0.10.1 the flat body of a 400 BadRequestError, nested under "error".
func vllmDeadEvent(dialect string) []byte {
	var b []byte
	if dialect == DialectVLLMLegacy {
		_, flat := errorBody(DialectVLLMLegacy, "", apierror.New(http.StatusBadRequest, "", vllmDeadMessage))
		b = append(append([]byte(`{"error":`), bytes.TrimSpace(flat)...), '}')
	} else {
		_, nested := errorBody(DialectVLLM, "", apierror.New(http.StatusInternalServerError, "", vllmDeadMessage))
		b = bytes.TrimSpace(nested)
	}
	return append(append([]byte("data: "), b...), "\n\n"...)
}

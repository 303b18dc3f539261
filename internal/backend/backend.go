// Package backend sends one request to one deployment: an OpenAI-compatible
// upstream (vLLM, SGLang, Ollama, llama.cpp, Model Studio) or the built-in
// simulator, behind the same interface.
package backend

import (
	"context"
	"net/http"
	"time"
)

// Request is one upstream attempt.
type Request struct {
	// Endpoint is the path below the deployment's base URL:
	// "chat/completions", "completions" or "embeddings".
	Endpoint string
	// Body is the client's JSON body, forwarded as is but for the model name,
	// which the backend splices to the deployment's upstream name.
	Body []byte
	// ModelSpan is where the "model" value (with its quotes) sits in Body:
	// Body[ModelSpan[0]:ModelSpan[1]]. Zero when absent.
	ModelSpan [2]int
	// StreamSpan and StreamOptionsSpan are where those values sit (null
	// included), zero when absent: a stream-only deployment rewrites them.
	StreamSpan, StreamOptionsSpan [2]int
	// PublicModel is the name the client asked for (after alias resolution);
	// responses carry it back in their "model" field.
	PublicModel string
	Stream      bool
	RequestID   string
	// Deadline, when set, is the client's: the time left is sent upstream
	// as X-Request-Timeout (seconds), so a gateway or engine behind this one
	// can stop when the client would.
	Deadline time.Time
	// Trace, when set, is sent as the W3C traceparent and tracestate
	// headers: the attempt's span, or the client's own when the gateway
	// does not trace. A pointer: most requests have none, and every one
	// allocates a Request.
	Trace *TraceContext
}

// TraceContext is the W3C trace context an attempt carries upstream.
type TraceContext struct {
	Parent string // the traceparent header
	State  string // the tracestate header; "": none
}

// Backend sends one request to one deployment. A 2xx upstream answer comes
// back as the *http.Response (its Body a JSON document, or an SSE stream when
// Stream); anything else comes back as an *apierror.Error normalised from the
// upstream's dialect, with Upstream set. Cancelling ctx cancels the upstream
// request at once.
type Backend interface {
	Do(ctx context.Context, r *Request) (*http.Response, error)
}

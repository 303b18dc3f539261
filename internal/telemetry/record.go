package telemetry

import "time"

// Record is what one client request did, assembled by the request core
// when the request ends and handed to the metrics, the access log and the
// trace. It lives on the core's stack for that moment: keep the readers
// from holding on to it.
type Record struct {
	RequestID string
	// API is the front end the request came by: "grpc", "job"; "" is the
	// HTTP API.
	API string
	// Key is the name of the client's API key; "" without keys.
	Key string
	// Model is the public model the request was routed to first (after
	// aliases); "" when routing failed or the request never got that far.
	Model string
	// Served is the model that answered (a fallback, perhaps), and
	// Deployment its deployment; both "" when none answered.
	Served     string
	Deployment string
	// Status is the status the client got (499: it left first).
	Status int
	Stream bool
	Start  time.Time
	// Total is from the body read to the end of the answer. Queued is
	// the wait for an admission place; Waited the backoff between retry
	// rounds; FirstByte the answering attempt's time from its send to its
	// first byte (its time to first token, for a stream); Upstream the
	// time spent in upstream attempts, the answer's relay included;
	// Overhead the rest: the gateway's own time (parsing, routing,
	// validating, picking, marshalling).
	Total, Queued, Waited, FirstByte, Upstream, Overhead time.Duration
	// Admission is whether the request reached an admission queue (of
	// its first model or of a fallback): only then does Queued say how
	// long a queue held it.
	Admission bool
	// PerToken is a stream's time per output token after the first; 0
	// when the answer reported no usage or one token.
	PerToken time.Duration
	// Usage is the token usage the answer reported, when it did.
	HasUsage                       bool
	PromptTokens, CompletionTokens int64
	// Attempts counts upstream attempts (hedges and continuations
	// included); Retries, Hedges and Continuations the extra ones of each
	// kind.
	Attempts, Retries, Hedges, Continuations int
	// Fallback is why the request moved down its fallback chain to
	// Served (an outcome class); "" when the first model answered.
	Fallback string
	// Cache is what the cache did (one of CacheResults), "" with no cache.
	Cache string
	// Similarity is a semantic hit's cosine similarity to the earlier
	// prompt it was served for; 0 otherwise.
	Similarity float32
	// Err is what broke the relay, if anything.
	Err error
	// RequestBody and AnswerBody are the start of each (4 KiB), only
	// when logging.bodies is on; nil otherwise.
	RequestBody, AnswerBody []byte
}

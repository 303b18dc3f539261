// Package jobs runs requests in the background: async jobs (a POST with
// X-Omnigate-Async: true answers 202 and runs later), the OpenAI Batch
// API (files of requests, run line by line) and the files they read and
// write. A job runs through the same request core as a synchronous
// request, at the admission queue's batch priority. Jobs, batches and
// files live in a Backend (backend.go): the embedded single-file store
// for one gateway, or Redis or NATS JetStream shared by many, where a
// gateway that dies loses its jobs' leases to another that finishes them.
package jobs

import (
	"encoding/json"
)

// Status is where a job is in its life.
type Status string

// The statuses of a job. The last four are final.
const (
	Queued    Status = "queued"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
	Expired   Status = "expired"
)

// Final reports whether a job with status s is done for good.
func (s Status) Final() bool {
	return s == Succeeded || s == Failed || s == Cancelled || s == Expired
}

// Job is one background request: exactly what the client submitted, and
// what became of it. It is stored as JSON under "job/" + ID.
type Job struct {
	ID     string `json:"id"`
	Object string `json:"object"` // "job"
	// Endpoint is the path the request was sent to: /v1/chat/completions,
	// /v1/completions or /v1/embeddings.
	Endpoint string `json:"endpoint"`
	// Model is the request's model field, as the client wrote it.
	Model  string `json:"model"`
	Status Status `json:"status"`
	// CreatedAt, StartedAt (its last run) and CompletedAt are Unix
	// seconds; ExpiresAt is when a job still queued expires.
	CreatedAt   int64 `json:"created_at"`
	StartedAt   int64 `json:"started_at,omitempty"`
	CompletedAt int64 `json:"completed_at,omitempty"`
	ExpiresAt   int64 `json:"expires_at"`
	// Attempts is how many times it ran through the request core.
	Attempts int `json:"attempts"`
	// Response is the answer the synchronous call would have given:
	// its status and its body (JSON), once the job is final.
	Response *Response `json:"response,omitempty"`
	// Webhook is the URL told when the job is final; "" for none.
	Webhook string `json:"webhook,omitempty"`
	// Batch is the batch the job is a line of; "" for a job of its own.
	Batch string `json:"batch_id,omitempty"`
	// CustomID is the batch line's custom_id.
	CustomID string `json:"custom_id,omitempty"`
}

// jobRecord is a job as stored: the client's view, and what it runs.
type jobRecord struct {
	Job Job `json:"job"`
	// Body is exactly what the client sent; Header the request headers
	// the core reads (see keptHeaders).
	Body   json.RawMessage   `json:"body"`
	Header map[string]string `json:"header,omitempty"`
	// Line is its line in the batch input, from 1.
	Line int `json:"line,omitempty"`
	// Beat is when its runner last said it is alive (Unix ms): a second
	// delivery of a job whose runner is alive leaves it to that runner.
	Beat int64 `json:"beat,omitempty"`
	// Counted: its batch's done counter counts it.
	Counted bool `json:"counted,omitempty"`
	// Delivered: its webhook was delivered, or given up on.
	Delivered bool `json:"delivered,omitempty"`
}

// Response is a job's answer: the status the synchronous call would have
// had, the X-Request-Id it was served under, and its body.
type Response struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
	// Model and Deployment say which model and deployment answered ("":
	// none did, or the cache).
	Model      string `json:"model,omitempty"`
	Deployment string `json:"deployment,omitempty"`
}

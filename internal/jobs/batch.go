package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Batch is a batch of requests, in OpenAI's shape.
type Batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"` // "batch"
	Endpoint         string            `json:"endpoint"`
	Errors           *BatchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           BatchStatus       `json:"status"`
	OutputFileID     string            `json:"output_file_id,omitempty"`
	ErrorFileID      string            `json:"error_file_id,omitempty"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     int64             `json:"in_progress_at,omitempty"`
	ExpiresAt        int64             `json:"expires_at"`
	FinalizingAt     int64             `json:"finalizing_at,omitempty"`
	CompletedAt      int64             `json:"completed_at,omitempty"`
	FailedAt         int64             `json:"failed_at,omitempty"`
	ExpiredAt        int64             `json:"expired_at,omitempty"`
	CancellingAt     int64             `json:"cancelling_at,omitempty"`
	CancelledAt      int64             `json:"cancelled_at,omitempty"`
	RequestCounts    Counts            `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
	// Model is the model field of the batch's first line.
	Model string `json:"model,omitempty"`
}

// BatchStatus is where a batch is in its life.
type BatchStatus string

// The statuses of a batch; failed, completed, expired and cancelled are
// final.
const (
	BatchValidating BatchStatus = "validating"
	BatchFailed     BatchStatus = "failed"
	BatchInProgress BatchStatus = "in_progress"
	BatchFinalizing BatchStatus = "finalizing"
	BatchCompleted  BatchStatus = "completed"
	BatchExpired    BatchStatus = "expired"
	BatchCancelling BatchStatus = "cancelling"
	BatchCancelled  BatchStatus = "cancelled"
)

// Final reports whether a batch with status s is done for good.
func (s BatchStatus) Final() bool {
	return s == BatchFailed || s == BatchCompleted || s == BatchExpired || s == BatchCancelled
}

// BatchErrors are the problems that failed a batch's validation, each
// naming its line.
type BatchErrors struct {
	Object string       `json:"object"` // "list"
	Data   []BatchError `json:"data"`
}

// BatchError is one problem of a batch's input.
type BatchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// Counts are a batch's request counts.
type Counts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// batchRecord is a batch as stored.
type batchRecord struct {
	Batch Batch  `json:"batch"`
	Owner string `json:"owner,omitempty"`
	// Header is what its lines run with, as a job's Header.
	Header map[string]string `json:"header,omitempty"`
}

// BatchParams are the body of POST /v1/batches.
type BatchParams struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

// maxErrors bounds the line errors a failed validation lists.
const maxErrors = 1000

// CreateBatch creates a batch of the requests in an uploaded file; it is
// validated and queued in the background (status validating).
func (s *Service) CreateBatch(ctx context.Context, p BatchParams, h http.Header) (*Batch, error) {
	switch {
	case p.InputFileID == "":
		return nil, apierror.Invalid("input_file_id", "Missing required parameter: 'input_file_id'.")
	case p.Endpoint == "":
		return nil, apierror.Invalid("endpoint", "Missing required parameter: 'endpoint'.")
	case !endpointOK(p.Endpoint):
		return nil, apierror.Invalid("endpoint", "endpoint must be /v1/chat/completions, /v1/completions or /v1/embeddings, not %q.", p.Endpoint)
	case p.CompletionWindow != "24h":
		return nil, apierror.Invalid("completion_window", "completion_window must be \"24h\", not %q.", p.CompletionWindow)
	case len(p.Metadata) > 16:
		return nil, apierror.Invalid("metadata", "metadata may hold at most 16 keys, not %d.", len(p.Metadata))
	}
	_, in, err := s.file(ctx, p.InputFileID, h)
	if err != nil {
		var ae *apierror.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			ae.Param = "input_file_id"
		}
		return nil, err
	}
	if in.File.Purpose != PurposeBatch {
		return nil, apierror.Invalid("input_file_id", "File %s has purpose %q; a batch's input must have purpose %q.", p.InputFileID, in.File.Purpose, PurposeBatch)
	}
	b, _ := s.backend(ctx)
	now := s.now()
	md := p.Metadata
	if md == nil {
		md = map[string]string{}
	}
	rec := &batchRecord{Owner: owner(h), Header: keep(h), Batch: Batch{
		ID: newID("batch_", now), Object: "batch", Endpoint: p.Endpoint, InputFileID: p.InputFileID,
		CompletionWindow: p.CompletionWindow, Status: BatchValidating, CreatedAt: now.Unix(),
		ExpiresAt: now.Add(24 * time.Hour).Unix(), Metadata: md,
	}}
	k := key(kindBatch, rec.Batch.ID)
	if _, err := store(ctx, b.Records, k, rec, 0); err != nil {
		return nil, storeError(err)
	}
	if err := b.Queue.Push(ctx, k); err != nil {
		b.Records.Delete(context.WithoutCancel(ctx), k)
		return nil, storeError(err)
	}
	return &rec.Batch, nil
}

// batch reads the record of the batch with id, if it is the caller's.
func (s *Service) batch(ctx context.Context, id string, h http.Header) (*Backend, *batchRecord, error) {
	if !validID(id) {
		return nil, nil, notFound("batch", "batch_id", id)
	}
	b, err := s.backend(ctx)
	if err != nil {
		return nil, nil, err
	}
	rec := new(batchRecord)
	if _, err := load(ctx, b.Records, key(kindBatch, id), rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, notFound("batch", "batch_id", id)
		}
		return nil, nil, storeError(err)
	}
	if rec.Owner != "" && rec.Owner != owner(h) {
		return nil, nil, notFound("batch", "batch_id", id)
	}
	return b, rec, nil
}

// GetBatch returns the batch with id, its request counts as of now.
func (s *Service) GetBatch(ctx context.Context, id string, h http.Header) (*Batch, error) {
	b, rec, err := s.batch(ctx, id, h)
	if err != nil {
		return nil, err
	}
	s.liveCounts(ctx, b, rec)
	return &rec.Batch, nil
}

// liveCounts fills the counts of a batch still running from its counters.
func (s *Service) liveCounts(ctx context.Context, b *Backend, rec *batchRecord) {
	if st := rec.Batch.Status; st.Final() || st == BatchValidating {
		return
	}
	done, err1 := b.Records.Add(ctx, doneCounter(rec.Batch.ID), 0)
	failed, err2 := b.Records.Add(ctx, failedCounter(rec.Batch.ID), 0)
	if err1 == nil && err2 == nil {
		c := &rec.Batch.RequestCounts
		c.Failed = min(int(failed), c.Total)
		c.Completed = max(min(int(done-failed), c.Total-c.Failed), 0)
	}
}

// ListBatches returns up to limit of the caller's batches, newest first,
// older than the batch after ("" from the newest), and whether there are
// more.
func (s *Service) ListBatches(ctx context.Context, after string, limit int, h http.Header) ([]Batch, bool, error) {
	var out []Batch
	o := owner(h)
	b, err := s.backend(ctx)
	if err != nil {
		return nil, false, err
	}
	more, err := s.list(ctx, kindBatch, after, limit, func(v []byte) bool {
		var rec batchRecord
		if json.Unmarshal(v, &rec) != nil || (rec.Owner != "" && rec.Owner != o) {
			return false
		}
		s.liveCounts(ctx, b, &rec)
		out = append(out, rec.Batch)
		return true
	})
	return out, more, err
}

// CancelBatch cancels the batch with id: lines not yet run never run,
// running ones are stopped, and the batch ends cancelled with the output
// of the lines that finished.
func (s *Service) CancelBatch(ctx context.Context, id string, h http.Header) (*Batch, error) {
	b, _, err := s.batch(ctx, id, h)
	if err != nil {
		return nil, err
	}
	now := s.now().Unix()
	rec, err := update(ctx, b.Records, key(kindBatch, id), func(r *batchRecord) error {
		switch st := r.Batch.Status; {
		case st.Final() || st == BatchFinalizing:
			return apierror.New(http.StatusConflict, "batch_final", "Batch %s is %s: it can no longer be cancelled.", id, st)
		case st == BatchCancelling:
			return errUnchanged
		}
		r.Batch.Status, r.Batch.CancellingAt = BatchCancelling, now
		return nil
	})
	if err != nil {
		return nil, storeError(err) // the 409 as it is, or the store's failure
	}
	s.forgetStatus(id)
	// A batch whose lines were all done already, or that never got its
	// lines queued, is finalized now.
	b.Queue.Push(context.WithoutCancel(ctx), key(kindFinal, id))
	return &rec.Batch, nil
}

// doneCounter counts a batch's lines that are final; failedCounter those
// of them that did not succeed.
func doneCounter(id string) string   { return "done/" + id }
func failedCounter(id string) string { return "failed/" + id }

// count counts a final line of its batch, once, and queues the batch's
// finalization when it was the last. A crash between the count and the
// line's Counted mark counts it twice: finalize checks every line, so a
// batch is never finalized early, and the exact counts are taken then.
func (s *Service) count(ctx context.Context, b *Backend, rec *jobRecord) {
	id := rec.Job.Batch
	n, err := b.Records.Add(ctx, doneCounter(id), 1)
	if err != nil {
		s.opt.Log.Warn("batch line not counted", "batch", id, "line", rec.Line, "err", err)
		return
	}
	if rec.Job.Status != Succeeded {
		b.Records.Add(ctx, failedCounter(id), 1)
	}
	update(ctx, b.Records, key(kindJob, rec.Job.ID), func(r *jobRecord) error {
		r.Counted = true
		return nil
	})
	br := new(batchRecord)
	if _, err := load(ctx, b.Records, key(kindBatch, id), br); err != nil {
		return
	}
	if int(n) >= br.Batch.RequestCounts.Total {
		b.Queue.Push(ctx, key(kindFinal, id))
	}
}

// statuses caches batch statuses for a second: every running line asks
// whether its batch is being cancelled, every second.
type statuses struct {
	mu sync.Mutex
	m  map[string]statusAt
}

type statusAt struct {
	status BatchStatus
	at     time.Time
}

// batchCancelling reports whether the batch with id is being cancelled
// (or was).
func (w *worker) batchCancelling(ctx context.Context, id string) bool {
	st := w.s.batchStatus(ctx, w.b, id)
	return st == BatchCancelling || st == BatchCancelled
}

func (s *Service) batchStatus(ctx context.Context, b *Backend, id string) BatchStatus {
	now := s.now()
	s.statuses.mu.Lock()
	c, ok := s.statuses.m[id]
	s.statuses.mu.Unlock()
	if ok && now.Sub(c.at) < time.Second {
		return c.status
	}
	rec := new(batchRecord)
	if _, err := load(ctx, b.Records, key(kindBatch, id), rec); err != nil {
		return ""
	}
	s.statuses.mu.Lock()
	if s.statuses.m == nil || len(s.statuses.m) > 10000 {
		s.statuses.m = map[string]statusAt{}
	}
	s.statuses.m[id] = statusAt{rec.Batch.Status, now}
	s.statuses.mu.Unlock()
	return rec.Batch.Status
}

func (s *Service) forgetStatus(id string) {
	s.statuses.mu.Lock()
	delete(s.statuses.m, id)
	s.statuses.mu.Unlock()
}

// lineID is the job id of a batch's line n.
func lineID(batch string, n int) string { return batch + "-" + strconv.Itoa(n) }

package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// Executor serves a job's request through the request core.
type Executor interface {
	// Check validates a request before it is queued, as the synchronous
	// call would at its start (its parameters against the model's limits
	// too, with limits), and says what it read of it (once parsed, even
	// when refused); the error is the *apierror.Error the client gets
	// instead of a job. h is the client's headers (the API key's name in
	// HeaderKey).
	Check(endpoint string, body []byte, h http.Header, limits bool) (Checked, error)
	// Execute serves the request and returns its answer whole.
	Execute(ctx context.Context, endpoint string, body []byte, header http.Header, requestID string) Answer
}

// Checked is what Check read of a request: its model field, and whether
// it asks for a stream (which a job cannot answer).
type Checked struct {
	Model  string
	Stream bool
}

// Answer is what a job's run got from the request core.
type Answer struct {
	Status            int
	Body              []byte // JSON: the answer, or the OpenAI error
	Model, Deployment string
	// Err is set when the run did not end with an answer to keep: the
	// context ended (the job was cancelled, its lease lost, the gateway
	// stopping).
	Err error
}

// Opener opens the backend, once it is first needed.
type Opener func(ctx context.Context) (*Backend, error)

// Options configure a Service.
type Options struct {
	Clock clock.Clock  // clock.Real when nil
	Log   *slog.Logger // slog.Default when nil
	// Secret signs webhooks; nil: jobs cannot ask for one.
	Secret []byte
	// Client delivers webhooks; a client with the webhook timeout when nil.
	Client *http.Client
	// Metrics counts jobs and batches; nil: none.
	Metrics Metrics
}

// Metrics counts what the jobs do (telemetry.Metrics).
type Metrics interface {
	JobFinished(line bool, status string)
	JobRunning(delta int)
	BatchFinished(status string)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) JobFinished(bool, string) {}
func (noMetrics) JobRunning(int)           {}
func (noMetrics) BatchFinished(string)     {}

// Service is the jobs, batches and files of one gateway, over a backend
// it may share with others.
type Service struct {
	cfg  config.Jobs
	exec Executor
	open Opener
	opt  Options

	mu      sync.Mutex
	b       *Backend
	running context.Context // set by Start: the workers' lifetime
	started bool
	workers sync.WaitGroup
	stop    context.CancelFunc // ends the workers' runs, at Close
	// stopTaking ends the workers' taking of new tasks, at Close.
	stopTaking context.CancelFunc

	statuses statuses   // batch statuses, cached for a second
	hooks    *semaphore // webhook deliveries running beside the workers
}

// maxHooks bounds the webhook deliveries one gateway runs beside its
// workers.
const maxHooks = 64

// semaphore is a counting semaphore that never waits.
type semaphore chan struct{}

// TryAcquire takes a place if one is free.
func (s *semaphore) TryAcquire() bool {
	select {
	case *s <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives a place back.
func (s *semaphore) Release() { <-*s }

// New returns the service; nothing is opened until Start or the first
// request that needs the backend.
func New(cfg config.Jobs, open Opener, exec Executor, opt Options) *Service {
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Metrics == nil {
		opt.Metrics = noMetrics{}
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: cfg.Webhook.Timeout.D()}
	}
	hooks := make(semaphore, maxHooks)
	return &Service{cfg: cfg, open: open, exec: exec, opt: opt, hooks: &hooks}
}

// Start lets the workers run until ctx ends (or Close) once the backend
// is open; with eager it opens the backend now (jobs are waiting in it),
// else at the first request that needs it.
func (s *Service) Start(ctx context.Context, eager bool) error {
	s.mu.Lock()
	s.running = ctx
	b := s.b
	s.mu.Unlock()
	if eager && b == nil {
		_, err := s.backend(ctx)
		return err
	}
	if b != nil {
		s.startWorkers()
	}
	return nil
}

// backend returns the backend, opening it the first time.
func (s *Service) backend(ctx context.Context) (*Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b != nil {
		return s.b, nil
	}
	b, err := s.open(ctx)
	if err != nil {
		s.opt.Log.Error("job store unavailable", "store", s.cfg.Store, "err", err)
		e := apierror.New(http.StatusServiceUnavailable, "job_store_unavailable", "The job store is unavailable.")
		e.Err = err
		return nil, e
	}
	s.b = b
	if s.running != nil {
		s.startWorkersLocked()
	}
	return b, nil
}

func (s *Service) startWorkers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startWorkersLocked()
}

func (s *Service) startWorkersLocked() {
	if s.started || s.running == nil || s.b == nil {
		return
	}
	s.started = true
	ctx, stop := context.WithCancel(context.WithoutCancel(s.running))
	taking, stopTaking := context.WithCancel(s.running)
	s.stop, s.stopTaking = stop, stopTaking
	w := &worker{s: s, b: s.b}
	for range s.cfg.Workers {
		s.workers.Go(func() { w.loop(taking, ctx) })
	}
	s.workers.Go(func() { w.sweep(taking) })
	s.workers.Go(func() { w.retain(taking) })
}

// Close stops taking jobs, waits for the running ones until ctx ends,
// then cancels them (their leases lapse and another gateway, or this one
// restarted, runs them again) and closes the backend.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	stop, stopTaking, b := s.stop, s.stopTaking, s.b
	s.mu.Unlock()
	if stopTaking != nil {
		stopTaking()
	}
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if stop != nil {
			stop()
		}
		<-done
	}
	if stop != nil {
		stop()
	}
	if b != nil && b.Close != nil {
		return b.Close()
	}
	return nil
}

// now is the clock's time.
func (s *Service) now() time.Time { return s.opt.Clock.Now() }

// owner is whose a job is: a hash of the client's Authorization header
// (the key itself is never stored), "" without one.
func owner(h http.Header) string {
	a := h.Get("Authorization")
	if a == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(a))
	return hex.EncodeToString(sum[:16])
}

// notFound is the error for a record that does not exist, or is not the
// caller's.
func notFound(what, param, id string) *apierror.Error {
	e := apierror.New(http.StatusNotFound, what+"_not_found", "No %s found with id '%s'.", what, id)
	e.Param = param
	return e
}

// storeError is a backend failure, as the client sees it.
func storeError(err error) error {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	e := apierror.New(http.StatusServiceUnavailable, "job_store_unavailable", "The job store is unavailable.")
	e.Err = err
	return e
}

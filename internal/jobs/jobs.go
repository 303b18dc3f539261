package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Request headers of a background job.
const (
	// HeaderAsync: true runs the request as a background job.
	HeaderAsync = "X-Omnigate-Async"
	// HeaderWebhook names the URL told when the job is final.
	HeaderWebhook = "X-Omnigate-Webhook"
	// HeaderKey carries, from the front end that checked it, the name of
	// the client's API key: the job's runs are that key's.
	HeaderKey = "X-Omnigate-Key"
)

// keptHeaders are the client's request headers a job keeps for its runs:
// what the core reads (cache directives). The Authorization header is
// kept as a hash, for the job's owner and the admission queue's fairness.
var keptHeaders = []string{"Cache-Control", HeaderKey}

// Submit queues a background request to endpoint (a path such as
// /v1/chat/completions) with the client's body and headers, and returns
// the job. The request is checked first, as the synchronous call would
// check it: a bad one gets its 4xx now, not a failed job later.
func (s *Service) Submit(ctx context.Context, endpoint string, body []byte, h http.Header) (*Job, error) {
	checked, err := s.exec.Check(endpoint, body, h, true)
	if err != nil {
		return nil, err
	}
	if checked.Stream {
		return nil, apierror.Invalid("stream", "A background job answers whole: set stream to false (or leave it out), or drop the %s header.", HeaderAsync)
	}
	hook, err := s.webhook(h.Get(HeaderWebhook))
	if err != nil {
		return nil, err
	}
	b, err := s.backend(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rec := &jobRecord{
		Job: Job{ID: newID("job_", now), Object: "job", Endpoint: endpoint, Model: checked.Model, Status: Queued,
			CreatedAt: now.Unix(), ExpiresAt: now.Add(s.cfg.Window.D()).Unix(), Webhook: hook},
		Body:   append(json.RawMessage(nil), body...),
		Header: keep(h),
	}
	k := key(kindJob, rec.Job.ID)
	if _, err := store(ctx, b.Records, k, rec, 0); err != nil {
		return nil, storeError(err)
	}
	if err := b.Queue.Push(ctx, k); err != nil {
		b.Records.Delete(context.WithoutCancel(ctx), k)
		return nil, storeError(err)
	}
	return &rec.Job, nil
}

// keep returns the headers of h a job keeps.
func keep(h http.Header) map[string]string {
	m := map[string]string{}
	for _, k := range keptHeaders {
		if v := h.Get(k); v != "" {
			m[k] = v
		}
	}
	if o := owner(h); o != "" {
		m["Owner"] = o
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// webhook checks a job's webhook URL: http or https, to an allowed host,
// with a secret to sign it with.
func (s *Service) webhook(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	if s.opt.Secret == nil {
		return "", apierror.Invalid(HeaderWebhook, "Webhooks are not enabled on this gateway (jobs.webhook.secret_env is not set).")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", apierror.Invalid(HeaderWebhook, "The %s header must be an http:// or https:// URL, not %q.", HeaderWebhook, raw)
	}
	if allowed := s.cfg.Webhook.AllowedHosts; len(allowed) > 0 &&
		!slices.Contains(allowed, u.Host) && !slices.Contains(allowed, u.Hostname()) {
		return "", apierror.Invalid(HeaderWebhook, "Webhooks may not call %s (see jobs.webhook.allowed_hosts).", u.Host)
	}
	return u.String(), nil
}

// Get returns the job with id, if it is the caller's.
func (s *Service) Get(ctx context.Context, id string, h http.Header) (*Job, error) {
	rec, err := s.job(ctx, id, h)
	if err != nil {
		return nil, err
	}
	return &rec.Job, nil
}

// job reads the record of the job with id, if it is the caller's.
func (s *Service) job(ctx context.Context, id string, h http.Header) (*jobRecord, error) {
	if !validID(id) {
		return nil, notFound("job", "job_id", id)
	}
	b, err := s.backend(ctx)
	if err != nil {
		return nil, err
	}
	rec := new(jobRecord)
	if _, err := load(ctx, b.Records, key(kindJob, id), rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("job", "job_id", id)
		}
		return nil, storeError(err)
	}
	if o := rec.Header["Owner"]; o != "" && o != owner(h) {
		return nil, notFound("job", "job_id", id)
	}
	return rec, nil
}

// Cancel cancels the job with id: a queued job never runs, a running one
// is stopped (its upstream request cancelled) within a second or so. A
// job already final cannot be cancelled (409).
func (s *Service) Cancel(ctx context.Context, id string, h http.Header) (*Job, error) {
	if _, err := s.job(ctx, id, h); err != nil {
		return nil, err
	}
	b, _ := s.backend(ctx)
	now := s.now().Unix()
	rec, err := update(ctx, b.Records, key(kindJob, id), func(r *jobRecord) error {
		if r.Job.Status.Final() {
			return apierror.New(http.StatusConflict, "job_final", "Job %s is %s already: only a queued or running job can be cancelled.", id, r.Job.Status)
		}
		r.Job.Status, r.Job.CompletedAt = Cancelled, now
		return nil
	})
	if err != nil {
		return nil, storeError(err) // the 409 as it is, or the store's failure
	}
	s.ended(rec)
	s.finished(ctx, b, rec)
	return &rec.Job, nil
}

// retryable reports whether a job's run that got status is tried again:
// the gateway or its engines were busy or failing, not the request.
// spentBudget reports whether a refused run's key has spent its token
// budget for the day or month (429 insufficient_quota): trying again in
// seconds would be refused the same, so the job ends at once.
func spentBudget(a Answer) bool {
	return a.Status == http.StatusTooManyRequests && bytes.Contains(a.Body, []byte(`"code":"insufficient_quota"`))
}

func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// endpointOK reports whether path is an endpoint a job can run.
func endpointOK(path string) bool {
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		return true
	}
	return false
}

package grpcapi

import (
	"context"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/jobs"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// SubmitJob queues the call's request as a background job.
func (s *Server) SubmitJob(ctx context.Context, req *pb.SubmitJobRequest) (*pb.Job, error) {
	h, id := s.incoming(ctx)
	var path string
	var encode func([]byte) ([]byte, error)
	switch r := req.GetRequest().(type) {
	case *pb.SubmitJobRequest_ChatCompletion:
		path, encode = "/v1/chat/completions", func(b []byte) ([]byte, error) { return appendChat(b, r.ChatCompletion, false) }
	case *pb.SubmitJobRequest_Completion:
		path, encode = "/v1/completions", func(b []byte) ([]byte, error) { return appendCompletion(b, r.Completion) }
	case *pb.SubmitJobRequest_Embedding:
		path, encode = "/v1/embeddings", func(b []byte) ([]byte, error) { return appendEmbedding(b, r.Embedding) }
	default:
		return nil, s.jobDone(ctx, id, nil, apierror.Invalid("request", "Missing required parameter: 'request' (chat_completion, completion or embedding)."))
	}
	buf := bufpool.Get(4 << 10)
	defer bufpool.Put(buf)
	body, err := s.encode(encode, buf)
	if err != nil {
		return nil, s.jobDone(ctx, id, nil, err)
	}
	if req.GetWebhook() != "" {
		if h == nil {
			h = http.Header{}
		}
		h.Set(jobs.HeaderWebhook, req.GetWebhook())
	}
	job, err := s.jobs(ctx, &h, func(j *jobs.Service) (*jobs.Job, error) { return j.Submit(ctx, path, body, h) })
	return job, s.jobDone(ctx, id, job, err)
}

// GetJob returns a job.
func (s *Server) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.Job, error) {
	h, id := s.incoming(ctx)
	job, err := s.jobs(ctx, &h, func(j *jobs.Service) (*jobs.Job, error) { return j.Get(ctx, req.GetId(), h) })
	return job, s.jobDone(ctx, id, job, err)
}

// CancelJob cancels a job.
func (s *Server) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.Job, error) {
	h, id := s.incoming(ctx)
	job, err := s.jobs(ctx, &h, func(j *jobs.Service) (*jobs.Job, error) { return j.Cancel(ctx, req.GetId(), h) })
	return job, s.jobDone(ctx, id, job, err)
}

// jobs runs do on the jobs service, when there is one, once the call's
// API key (in *h) is checked and named to the service (jobs.HeaderKey).
func (s *Server) jobs(ctx context.Context, h *http.Header, do func(*jobs.Service) (*jobs.Job, error)) (*pb.Job, error) {
	if s.opt.Jobs == nil {
		return nil, apierror.New(http.StatusNotImplemented, "jobs_disabled", "Background jobs are not enabled on this gateway.")
	}
	if *h != nil {
		delete(*h, jobs.HeaderKey)
	}
	k, err := s.opt.Core.Authenticate(*h)
	if err != nil {
		return nil, err
	}
	if k != nil {
		if *h == nil {
			*h = http.Header{}
		}
		(*h)[jobs.HeaderKey] = []string{k.Name}
	}
	j, err := do(s.opt.Jobs)
	if err != nil {
		return nil, err
	}
	return jobOf(j), nil
}

// jobDone sends the call's request id, counts the call as the HTTP front
// end counts a job call, and returns its error as a status.
func (s *Server) jobDone(ctx context.Context, id string, job *pb.Job, err error) error {
	md := metadata.MD{"x-request-id": []string{id}}
	code := http.StatusOK
	if err != nil {
		e := apierror.From(err)
		code = e.Status
		retryAfter(md, e)
	}
	grpc.SetHeader(ctx, md)
	s.opt.Core.Done(&dispatch.Call{RequestID: id, API: apiName}, nil, code, nil)
	if err != nil {
		return errorOf(ctx, err)
	}
	return nil
}

// jobOf is a job as its message.
func jobOf(j *jobs.Job) *pb.Job {
	out := &pb.Job{Id: j.ID, Object: j.Object, Endpoint: j.Endpoint, Model: j.Model, Status: string(j.Status),
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, CompletedAt: j.CompletedAt, ExpiresAt: j.ExpiresAt,
		Attempts: int32(j.Attempts), Webhook: j.Webhook, BatchId: j.Batch, CustomId: j.CustomID}
	if r := j.Response; r != nil {
		out.Response = &pb.JobResponse{StatusCode: int32(r.StatusCode), RequestId: r.RequestID, Body: string(r.Body),
			Model: r.Model, Deployment: r.Deployment}
	}
	return out
}

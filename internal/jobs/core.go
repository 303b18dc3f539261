package jobs

import (
	"context"
	"net/http"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
)

// CoreExecutor runs jobs through the request core, as the HTTP front end
// runs synchronous requests.
type CoreExecutor struct {
	Core *dispatch.Core
	// MaxAnswer bounds the answer read whole, in bytes.
	MaxAnswer int64
}

// endpointOf is the request endpoint of path.
func endpointOf(path string) (request.Endpoint, bool) {
	switch strings.TrimPrefix(path, "/v1/") {
	case "chat/completions":
		return request.Chat, true
	case "completions":
		return request.Completions, true
	case "embeddings":
		return request.Embeddings, true
	}
	return 0, false
}

// Check parses the request and checks it as the core would at its start,
// for the API key h names.
func (e CoreExecutor) Check(path string, body []byte, h http.Header, limits bool) (Checked, error) {
	ep, ok := endpointOf(path)
	if !ok {
		return Checked{}, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: POST %s.", path)
	}
	var req request.Request
	if err := request.Parse(ep, body, &req); err != nil {
		return Checked{}, err
	}
	c := Checked{Model: req.Model, Stream: req.Stream}
	var key *auth.Key
	if e.Core.AuthOn() {
		if key = e.Core.KeyNamed(h.Get(HeaderKey)); key == nil {
			return c, apierror.New(http.StatusUnauthorized, "invalid_api_key", "The API key is no longer valid.")
		}
	}
	return c, e.Core.Check(&req, body, key, limits)
}

// Execute serves the request whole.
func (e CoreExecutor) Execute(ctx context.Context, path string, body []byte, h http.Header, requestID string) Answer {
	ep, ok := endpointOf(path)
	req := new(request.Request)
	var err error
	if !ok {
		err = apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: POST %s.", path)
	} else {
		err = request.Parse(ep, body, req)
	}
	if err != nil { // checked at submission: a config reload may have changed what is valid
		ae := apierror.From(err)
		return Answer{Status: ae.Status, Body: ae.JSON()}
	}
	call := dispatch.Call{Req: req, Body: req.Normalize(body), RequestID: requestID, Header: h, API: "job"}
	if e.Core.AuthOn() {
		// The key was checked at submission; a key removed since stops
		// the job.
		if call.Key = e.Core.KeyNamed(h.Get(HeaderKey)); call.Key == nil {
			ae := apierror.New(http.StatusUnauthorized, "invalid_api_key", "The API key that submitted this job is no longer valid.")
			return Answer{Status: ae.Status, Body: ae.JSON()}
		}
	}
	w, err := e.Core.ServeWhole(ctx, &call, e.MaxAnswer)
	if w == nil {
		return Answer{Err: err}
	}
	return Answer{Status: w.Status, Body: w.Body, Model: w.Model, Deployment: w.Deployment}
}

var _ Executor = CoreExecutor{}

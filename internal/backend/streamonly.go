package backend

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/omnigate/omnigate/internal/answer"
	"github.com/omnigate/omnigate/internal/apierror"
)

// Deployments with StreamOnly (Model Studio's Omni models) refuse
// stream:false. A non-streaming request is sent with stream:true and the
// stream is read here and merged into the one chat.completion (or
// text_completion) document the client asked for.

// aggregate reads the SSE stream of resp and returns a synthetic 200 with
// the merged JSON document. public, when set, replaces the model name; src
// is where an error event came from.
func (o *OpenAI) aggregate(resp *http.Response, src ErrorSource, public string) (*http.Response, error) {
	defer resp.Body.Close()
	doc, err := aggregateStream(resp.Body, src, public)
	if err != nil {
		return nil, err
	}
	r := OK("application/json", io.NopCloser(bytes.NewReader(doc)), int64(len(doc)))
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		r.Header.Set("X-Request-Id", id)
	}
	r.Request = resp.Request
	return r, nil
}

// OK is a 200 the gateway makes itself (an aggregated stream, an answer
// from the cache): its content type and body, of n bytes (-1: unknown,
// no Content-Length).
func OK(contentType string, body io.ReadCloser, n int64) *http.Response {
	h := http.Header{"Content-Type": {contentType}}
	if n >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	}
	return &http.Response{Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: body, ContentLength: n}
}

// aggregateStream merges an OpenAI chunk stream into one document. A stream
// that errors, carries an error event or ends before any finish_reason is a
// 502 (timeouts keep their own *apierror.Error).
func aggregateStream(body io.Reader, src ErrorSource, public string) ([]byte, error) {
	doc, _, err := answer.Assemble(body, public)
	if err == nil {
		return doc, nil
	}
	var (
		ev *answer.EventError
		me *answer.MalformedError
		ae *apierror.Error
	)
	switch {
	case errors.As(err, &ev):
		e := NormalizeError(src, http.StatusBadGateway, ev.Data)
		e.Status, e.Type = http.StatusBadGateway, apierror.TypeServer
		return nil, e
	case errors.As(err, &me):
		return nil, midStream(me.What, me.Err)
	case errors.Is(err, answer.ErrIncomplete):
		return nil, midStream("the upstream stream ended before the answer was complete", io.ErrUnexpectedEOF)
	case errors.As(err, &ae):
		return nil, ae
	}
	return nil, midStream("the upstream stream broke off", err)
}

func midStream(msg string, err error) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: CodeUpstreamUnavailable,
		Message: msg, Upstream: true, Err: &ConnError{Err: err}}
}

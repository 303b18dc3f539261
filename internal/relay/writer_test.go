package relay

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
)

// taps records what a Writer taps.
type taps struct{ b strings.Builder }

func (t *taps) Write(p []byte) { t.b.Write(p) }

// client records what reaches the client, a write at a time (an empty
// one, which writes nothing, is not kept).
type client struct {
	writes []string
	fail   error
}

func (c *client) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	if len(p) > 0 {
		c.writes = append(c.writes, string(p))
	}
	return len(p), nil
}

const (
	ev1  = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
	ev2  = "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
	errv = "data: {\"error\":{\"message\":\"boom\",\"code\":500}}\n\n"
)

// TestWriterWholeEvents: a continuable stream reaches the client in whole
// events only, however it was cut; an engine's error event is held back
// with the client none the wiser; anything else passes as it came.
func TestWriterWholeEvents(t *testing.T) {
	tests := []struct {
		name   string
		whole  bool
		pieces []string
		want   []string // the client's writes
		held   string
		err    bool // a write said the upstream failed
	}{
		{"passes pieces as they come", false, []string{ev1[:10], ev1[10:] + ev2[:5], ev2[5:]}, []string{ev1[:10], ev1[10:] + ev2[:5], ev2[5:]}, "", false},
		{"whole events only", true, []string{ev1[:10], ev1[10:] + ev2[:5], ev2[5:]}, []string{ev1, ev2}, "", false},
		{"an error event held back", true, []string{ev1 + errv[:7], errv[7:] + ev2}, []string{ev1}, errv, true},
		{"an error event passed on when not continuable", false, []string{ev1 + errv}, []string{ev1 + errv}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tp := &client{}, &taps{}
			fw := &Writer{W: c, Tap: tp, Whole: tt.whole}
			var failed bool
			for _, p := range tt.pieces {
				if _, err := fw.Write([]byte(p)); err != nil {
					failed = errors.Is(err, errHeld)
					break
				}
			}
			if diff := cmp.Diff(tt.want, c.writes); diff != "" {
				t.Errorf("client writes (-want +got):\n%s", diff)
			}
			if string(fw.Held()) != tt.held || failed != tt.err {
				t.Errorf("held %q (want %q), upstream failed %v (want %v)", fw.Held(), tt.held, failed, tt.err)
			}
			if tp.b.String() != strings.Join(c.writes, "") {
				t.Errorf("tapped %q, the client got %q", tp.b.String(), strings.Join(c.writes, ""))
			}
		})
	}
}

// TestWriterKeepsClientError: the first failed write is the client's
// leaving; nothing more is written, the gateway's own error event
// included.
func TestWriterKeepsClientError(t *testing.T) {
	gone := errors.New("gone")
	c := &client{fail: gone}
	fw := &Writer{W: c, Tap: &taps{}}
	if _, err := fw.Write([]byte(ev1)); !errors.Is(err, gone) || !errors.Is(fw.Err(), gone) {
		t.Fatalf("Write: %v, Err %v", err, fw.Err())
	}
	c.fail = nil
	fw.ErrorEvent(apierror.New(502, "upstream_stream_error", "cut"))
	if _, err := fw.Write([]byte(ev2)); !errors.Is(err, gone) || len(c.writes) != 0 {
		t.Errorf("after the client left: %v, writes %q", err, c.writes)
	}
}

// TestErrorEvent: the gateway's error event is one SSE event with the
// OpenAI error JSON, past a whole-events stream's holding back.
func TestErrorEvent(t *testing.T) {
	c := &client{}
	fw := &Writer{W: c, Tap: &taps{}, Whole: true}
	fw.Write([]byte(ev1[:10]))
	fw.ErrorEvent(apierror.New(502, "upstream_stream_error", "The upstream stream ended abnormally."))
	want := "data: " + string(apierror.New(502, "upstream_stream_error", "The upstream stream ended abnormally.").JSON()) + "\n"
	if got := strings.Join(c.writes, ""); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

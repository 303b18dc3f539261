package grpcserver

import (
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "1H", want: time.Hour},
		{in: "2M", want: 2 * time.Minute},
		{in: "3S", want: 3 * time.Second},
		{in: "4m", want: 4 * time.Millisecond},
		{in: "5u", want: 5 * time.Microsecond},
		{in: "6n", want: 6},
		{in: "0m", want: 1},                             // already past: the call ends at once
		{in: "99999999H", want: 1<<63 - 1},              // past what a Duration holds
		{in: "12345678S", want: 12345678 * time.Second}, // 8 digits, the most there may be
		{in: "123456789S", bad: true},                   // 9
		{in: "", bad: true}, {in: "S", bad: true}, {in: "5", bad: true},
		{in: "5x", bad: true}, {in: "-1S", bad: true}, {in: "1.5S", bad: true},
	} {
		got, err := parseTimeout(c.in)
		if c.bad != (err != nil) || !c.bad && got != c.want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v (bad %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestEncodeGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"plain message":     "plain message",
		"100% sure":         "100%25 sure",
		"line\nbreak":       "line%0Abreak",
		"café":              "caf%C3%A9",
		"tab\there, ~tilde": "tab%09here, ~tilde",
	} {
		if got := encodeGRPCMessage(in); got != want {
			t.Errorf("encodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

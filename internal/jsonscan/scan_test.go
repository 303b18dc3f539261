package jsonscan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		in      string
		wantOff int // -1: valid
		wantMsg string
	}{
		{`{}`, -1, ""},
		{` [1, -0.5e+3, "x", true, false, null, {"a": {"b": []}}] `, -1, ""},
		{`"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"`, -1, ""},
		{`"\ud800"`, -1, ""}, // lone surrogate: grammatical
		{`"héllo ☃"`, -1, ""},
		{`0`, -1, ""},
		{`-0`, -1, ""},
		{`1E400`, -1, ""}, // out of float range but grammatical
		{``, 0, "unexpected end of input"},
		{`   `, 3, "unexpected end of input"},
		{`{`, 1, "expected object key"},
		{`{"a"}`, 4, "expected ':'"},
		{`{"a":1,}`, 7, "expected object key"},
		{`{"a":1 "b":2}`, 7, "expected ',' or '}'"},
		{`[1,]`, 3, "unexpected character ']'"},
		{`[1 2]`, 3, "expected ',' or ']'"},
		{`01`, 1, "after top-level value"},
		{`-`, 1, "in number"},
		{`1.`, 2, "expected digit after '.'"},
		{`1e`, 2, "expected digit in exponent"},
		{`+1`, 0, "unexpected character '+'"},
		{`.5`, 0, "unexpected character '.'"},
		{`tru`, 3, "in literal true"},
		{`nul1`, 3, "in literal null"},
		{`"abc`, 4, "end of input in string"},
		{"\"a\tb\"", 2, "control character 0x09"},
		{`"\x"`, 2, "in string escape"},
		{`"\u12g4"`, 5, "expected hex digit"},
		{"\"\xff\"", 1, "invalid UTF-8"},
		{"\"ok\xc3\"", 3, "invalid UTF-8"},
		{`{} {}`, 3, "after top-level value"},
		{`{'a':1}`, 1, "expected object key"},
		{`NaN`, 0, "unexpected character 'N'"},
		{"\xef\xbb\xbf{}", 0, "unexpected byte 0xef"},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), -1, ""},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), MaxDepth, "nesting deeper"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			err := Check([]byte(tt.in))
			if tt.wantOff < 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if !json.Valid([]byte(tt.in)) {
					t.Fatalf("encoding/json disagrees: invalid")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check = %v, want *Error", err)
			}
			if e.Offset != tt.wantOff || !strings.Contains(e.Msg, tt.wantMsg) {
				t.Errorf("Check = %v, want offset %d and %q", err, tt.wantOff, tt.wantMsg)
			}
		})
	}
}

func TestDepthError(t *testing.T) {
	in := strings.Repeat(`{"a":`, MaxDepth+1)
	if err := Check([]byte(in)); !errors.Is(err, ErrDepth) {
		t.Fatalf("Check = %v, want ErrDepth", err)
	}
}

func TestDecoderReads(t *testing.T) {
	in := []byte(`{"s":"a\nb","plain":"xyz","f":-1.5e2,"i":42,"i2":3.0,"b":true,"n":null,"arr":[1,[2],{"k":3}],"obj":{"x":1}}`)
	d := NewDecoder(in)
	type rec struct {
		Key  string
		Got  string
		Span [2]int
	}
	var got []rec
	err := d.Object(func(key []byte) error {
		start := d.Offset()
		var s string
		switch string(key) {
		case "s", "plain":
			raw, _, err := d.ReadRawString()
			if err != nil {
				return err
			}
			s = string(AppendUnescaped(nil, raw))
		case "f":
			f, err := d.ReadFloat()
			if err != nil {
				return err
			}
			s = jsonString(f)
		case "i", "i2":
			lit, err := d.ReadNumber()
			if err != nil {
				return err
			}
			n, err := ParseInt(lit)
			if err != nil {
				return err
			}
			s = jsonString(n)
		case "b":
			b, err := d.ReadBool()
			if err != nil {
				return err
			}
			s = jsonString(b)
		case "n":
			if err := d.ReadNull(); err != nil {
				return err
			}
			s = "null"
		case "arr":
			var idx []int
			err := d.Array(func(i int) error { idx = append(idx, i); return nil })
			if err != nil {
				return err
			}
			s = jsonString(idx)
		default:
			return nil // left unread: Object skips it
		}
		got = append(got, rec{string(key), s, [2]int{start, d.Offset()}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	want := []rec{
		{"s", "a\nb", [2]int{}},
		{"plain", "xyz", [2]int{}},
		{"f", "-150", [2]int{}},
		{"i", "42", [2]int{}},
		{"i2", "3", [2]int{}},
		{"b", "true", [2]int{}},
		{"n", "null", [2]int{}},
		{"arr", "[0,1,2]", [2]int{}},
	}
	lits := map[string]string{"s": `"a\nb"`, "plain": `"xyz"`, "f": `-1.5e2`, "i": `42`, "i2": `3.0`, "b": `true`, "n": `null`, "arr": `[1,[2],{"k":3}]`}
	for i := range want {
		lit := lits[want[i].Key]
		at := strings.Index(string(in), `"`+want[i].Key+`":`+lit) + len(want[i].Key) + 3
		want[i].Span = [2]int{at, at + len(lit)}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReadTypeErrors(t *testing.T) {
	tests := []struct {
		in   string
		read func(d *Decoder) error
		want string
	}{
		{`1`, func(d *Decoder) error { _, _, err := d.ReadRawString(); return err }, "expected string, found number"},
		{`"1"`, func(d *Decoder) error { _, err := d.ReadFloat(); return err }, "expected number, found string"},
		{`1e999`, func(d *Decoder) error { _, err := d.ReadFloat(); return err }, "out of range"},
		{`null`, func(d *Decoder) error { _, err := d.ReadBool(); return err }, "expected boolean, found null"},
		{`[]`, func(d *Decoder) error { return d.Object(nil) }, "expected object, found array"},
		{`{}`, func(d *Decoder) error { return d.Array(nil) }, "expected array, found object"},
		{`0`, func(d *Decoder) error { return d.ReadNull() }, "expected null, found number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := NewDecoder([]byte(tt.in))
			err := tt.read(&d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error // nil: ok
	}{
		{"0", 0, nil}, {"-0", 0, nil}, {"-7", -7, nil}, {"123456789012345678", 123456789012345678, nil},
		// exact at the int64 bounds, not rounded through float64
		{"9223372036854775807", 9223372036854775807, nil},
		{"-9223372036854775808", -9223372036854775808, nil},
		{"9223372036854775808", 0, ErrRange},
		{"-9223372036854775809", 0, ErrRange},
		{"9223372036854775807.0", 9223372036854775807, nil},
		{"92233720368547758070e-1", 9223372036854775807, nil},
		{"9.223372036854775807e18", 9223372036854775807, nil},
		{"9.223372036854775808e18", 0, ErrRange},
		{"1e3", 1000, nil}, {"1E+1", 10, nil}, {"2.0", 2, nil}, {"2.500e1", 25, nil}, {"100e-2", 1, nil},
		{"0.0", 0, nil}, {"0e999999999", 0, nil}, {"-0.0e-5", 0, nil},
		{"2.5", 0, ErrNotInteger}, {"25e-1", 0, ErrNotInteger}, {"1.0000000000000000000001", 0, ErrNotInteger},
		{"1e-999999999", 0, ErrNotInteger},
		{"1e19", 0, ErrRange}, {"1.5e300", 0, ErrRange}, {"1e999999999", 0, ErrRange},
	}
	for _, tt := range tests {
		got, err := ParseInt([]byte(tt.in))
		if err != tt.err || got != tt.want {
			t.Errorf("ParseInt(%s) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestEqualRaw(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`max_tokens`, `max_tokens`, true},
		{`max\u005ftokens`, `max_tokens`, true},
		{`max_tokens`, `max\u005Ftokens`, true},
		{`\u006d\u0061x`, `m\u0061\u0078`, true},
		{`a\/b`, `a/b`, true},
		{`a\\u0062`, `ab`, false}, // an escaped backslash, then "u0062"
		{`ab`, `abc`, false},
		{`ab\u0063`, `ab`, false},
		{`\ud83d\ude00`, "😀", true},
	}
	for _, tt := range tests {
		if got := EqualRaw([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("EqualRaw(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := EqualRaw([]byte(tt.b), []byte(tt.a)); got != tt.want {
			t.Errorf("EqualRaw(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { EqualRaw([]byte(`max\u005ftokens`), []byte(`m\u0061x_tokens`)) }); n != 0 {
		t.Errorf("EqualRaw with escapes allocates %v times", n)
	}
}

func TestUnescapeAndEqual(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`plain`, "plain"},
		{`a\"b\\c\/d`, `a"b\c/d`},
		{`\b\f\n\r\t`, "\b\f\n\r\t"},
		{`\u00e9\u4e2d`, "é中"},
		{`\ud83d\ude00`, "😀"},
		{`\ud83d`, "\ufffd"},
		{`\ude00\ud83d x`, "\ufffd\ufffd x"},
		{`\ud83dA`, "\ufffdA"},
		{`\u006dodel`, "model"},
	}
	for _, tt := range tests {
		var want string
		if err := json.Unmarshal([]byte(`"`+tt.raw+`"`), &want); err != nil || want != tt.want {
			t.Fatalf("test case disagrees with encoding/json: %q %v", want, err)
		}
		if got := string(AppendUnescaped(nil, []byte(tt.raw))); got != tt.want {
			t.Errorf("AppendUnescaped(%s) = %q, want %q", tt.raw, got, tt.want)
		}
		if !Equal([]byte(tt.raw), tt.want) || Equal([]byte(tt.raw), tt.want+"x") {
			t.Errorf("Equal(%s, %q) wrong", tt.raw, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Equal([]byte(`\u006dodel`), "model") }); n != 0 {
		t.Errorf("Equal with escapes allocates %v times", n)
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001f"`},
		{"é中😀", `"é中😀"`},
		{"a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"<&>", `"<&>"`},
	}
	for _, tt := range tests {
		got := string(AppendString([]byte("x"), tt.in))
		if diff := cmp.Diff("x"+tt.want, got); diff != "" {
			t.Errorf("AppendString(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestObjectArrayEach(t *testing.T) {
	in := []byte(` {"a": [1, 2], "b\u0021": "x"} `)
	type member struct {
		Key, Value string
		Off        int
	}
	var got []member
	err := ObjectEach(in, func(key, value []byte, off int) error {
		got = append(got, member{string(key), string(value), off})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []member{{"a", "[1, 2]", 7}, {"b!", `"x"`, 26}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ObjectEach (-want +got):\n%s", diff)
	}
	stop := errors.New("stop")
	if err := ObjectEach(in, func(key, value []byte, off int) error { return stop }); err != stop {
		t.Errorf("callback error not returned as is: %v", err)
	}
	if err := ObjectEach([]byte(`{"a":1} x`), func(_, _ []byte, _ int) error { return nil }); err == nil {
		t.Errorf("trailing garbage accepted")
	}
}

func TestKindOf(t *testing.T) {
	for in, want := range map[string]Kind{` {`: Object, `[`: Array, `"`: String, `-1`: Number, `t`: Bool, `n`: Null, ``: Invalid, `x`: Invalid} {
		if got := KindOf([]byte(in)); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	in := []byte(`{"model":"m","messages":[{"role":"user","content":"hello there, how are you"}],"temperature":0.7,"max_tokens":100}`)
	n := testing.AllocsPerRun(100, func() {
		if err := Check(in); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Check allocates %v times per run", n)
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{}`, `[1,"a",{"b":null}]`, `"\ud83d\ude00"`, `-0.1e-5`, `{"a":`, "\"\xff\"", `[[[[]]]]`, `01`, ` true `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		err := Check(in)
		if errors.Is(err, ErrDepth) {
			return // encoding/json allows deeper nesting
		}
		// encoding/json.Valid does not check UTF-8 inside strings; we do.
		want := json.Valid(in) && utf8.Valid(in)
		if (err == nil) != want {
			t.Fatalf("Check(%q) = %v, encoding/json+utf8 valid = %v", in, err, want)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(in) {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		// Strings decode as encoding/json decodes them.
		var v any
		if json.Unmarshal(in, &v) == nil {
			if s, ok := v.(string); ok {
				d := NewDecoder(in)
				raw, _, err := d.ReadRawString()
				if got := AppendUnescaped(nil, raw); err != nil || string(got) != s {
					t.Fatalf("ReadRawString(%q) unescaped = %q, %v; encoding/json %q", in, got, err, s)
				}
			}
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\x7f\xff", "é\u2028", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if err := Check(out); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, out, err)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json round trip gives %q", s, got, wantS)
		}
	})
}

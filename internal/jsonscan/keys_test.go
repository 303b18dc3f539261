package jsonscan

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readUnique reads in with ObjectUnique all the way down, fn reading the
// values of the keys in read (and knowing them: it does not check those for
// repeats), leaving the others unread.
func readUnique(in string, read ...string) error {
	d := NewDecoder([]byte(in))
	var keys Keys
	var obj func() error
	obj = func() error {
		return d.ObjectUnique(&keys, func(key []byte) error {
			for _, k := range read {
				if string(key) == k {
					if KindOf(d.Data()[d.Offset():]) == Object {
						return obj()
					}
					_, err := d.Skip()
					return err
				}
			}
			return nil
		})
	}
	if err := obj(); err != nil {
		return err
	}
	return d.End()
}

func TestObjectUnique(t *testing.T) {
	many := func(n int, extra string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i) + ",")
		}
		return b.String() + extra + "}"
	}
	tests := []struct {
		name    string
		in      string
		read    []string
		wantKey string // and wantOff, where its second occurrence is; "": no duplicate
		wantOff int
	}{
		{"distinct", `{"a":1,"b":2,"ab":3,"ba":4}`, nil, "", 0},
		{"repeat", `{"a":1,"b":2,"a":3}`, nil, "a", 13},
		{"repeat, escaped", `{"top_k":1,"top\u005fk":2}`, nil, "top_k", 11},
		{"escaped first", `{"\u0061":1,"a":2}`, nil, "a", 12},
		{"both escaped", `{"\u0061b":1,"a\u0062":2}`, nil, "ab", 13},
		{"same length and ends", `{"ab":1,"aab":2,"abb":3,"acb":4}`, nil, "", 0},
		{"empty key twice", `{"":1,"":2}`, nil, "", 6},
		{"read keys are fn's to check", `{"a":1,"a":2}`, []string{"a"}, "", 0},
		{"nested objects have their own keys", `{"x":1,"a":{"x":1,"y":2},"b":{"x":3},"c":{"y":4,"y":5}}`, []string{"a", "b", "c"}, "y", 48},
		{"outer keys after a nested object", `{"x":1,"o":{"x":2,"y":3},"y":4,"x":5}`, []string{"o"}, "x", 31},
		{"unread nested objects are not checked", `{"a":{"k":1,"k":2}}`, nil, "", 0},
		{"beyond the spans: a map", many(40, `"k3":9`), nil, "k3", len(many(40, "")) - 1},
		{"beyond the spans, no repeat", many(40, `"z":9`), nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readUnique(tt.in, tt.read...)
			if tt.wantOff == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var dk *DuplicateKeyError
			if !errors.As(err, &dk) {
				t.Fatalf("got %v, want a *DuplicateKeyError", err)
			}
			if diff := cmp.Diff(&DuplicateKeyError{Key: tt.wantKey, Offset: tt.wantOff}, dk); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestObjectUniqueNoAllocs(t *testing.T) {
	in := []byte(`{"model":"m","top_k":20,"messages":[{"role":"user","content":"hi","name":"x"}],"min_p":0.1}`)
	n := testing.AllocsPerRun(100, func() {
		d := NewDecoder(in)
		var keys Keys
		if err := d.ObjectUnique(&keys, nil); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("ObjectUnique allocates %v times per run", n)
	}
}

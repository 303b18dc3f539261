package hardware

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const docPath = "../../docs/hardware.md"

// docBlockRE finds docs/hardware.md's generated blocks: a marker naming
// a golden file under testdata (or the catalog), then a fenced block.
var docBlockRE = regexp.MustCompile("(?s)<!-- (golden|generated): ([^ ]+) -->\n(```[a-z]*\n)(.*?)(```\n)")

// TestDocExamples checks that every example in docs/hardware.md is the
// golden output it names, and the catalog table WriteCatalog's; -update
// rewrites them.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	out := docBlockRE.ReplaceAllFunc(doc, func(block []byte) []byte {
		n++
		m := docBlockRE.FindSubmatch(block)
		kind, name, body := string(m[1]), string(m[2]), string(m[4])
		var want []byte
		switch {
		case kind == "golden":
			want, err = os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return block
			}
		case name == "catalog":
			var b bytes.Buffer
			if err := WriteCatalog(&b); err != nil {
				t.Fatal(err)
			}
			want = b.Bytes()
		default:
			t.Errorf("unknown generated block %q", name)
			return block
		}
		if diff := cmp.Diff(string(want), body); diff != "" && !*update {
			t.Errorf("docs/hardware.md's %s block (-want +got):\n%s", name, diff)
		}
		return []byte("<!-- " + kind + ": " + name + " -->\n" + string(m[3]) + string(want) + string(m[5]))
	})
	if n < 5 {
		t.Errorf("docs/hardware.md has %d generated blocks", n)
	}
	if *update && !bytes.Equal(out, doc) {
		if err := os.WriteFile(docPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

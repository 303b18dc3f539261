package plan

import "testing"

func TestDTypes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want DType
		b    float64
	}{
		{"", DTypeAuto, 2}, {"BF16", BF16, 2}, {"bfloat16", BF16, 2}, {"half", FP16, 2},
		{"fp8", FP8, 1}, {"int8", Int8, 1}, {"awq", AWQ, 0.51953125}, {"gptq", GPTQ, 0.51953125},
	} {
		d, err := ParseDType(c.in)
		if err != nil || d != c.want {
			t.Errorf("ParseDType(%q) = %q, %v; want %q", c.in, d, err, c.want)
		}
		if got := d.BytesPerParam(); got != c.b {
			t.Errorf("%s: %g bytes per parameter, want %g", d, got, c.b)
		}
	}
	if _, err := ParseDType("int3"); err == nil {
		t.Error("int3 parsed")
	}
	for _, c := range []struct {
		in   string
		want KVDType
		b    float64
	}{{"auto", KVAuto, 2}, {"fp8", KVFP8, 1}, {"fp8_e5m2", KVFP8, 1}, {"bf16", KV16, 2}} {
		k, err := ParseKVDType(c.in)
		if err != nil || k != c.want || k.Bytes() != c.b {
			t.Errorf("ParseKVDType(%q) = %q (%g B), %v; want %q (%g B)", c.in, k, k.Bytes(), err, c.want, c.b)
		}
	}
	if _, err := ParseKVDType("int4"); err == nil {
		t.Error("int4 KV parsed")
	}
}

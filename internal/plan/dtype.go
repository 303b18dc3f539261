package plan

import (
	"fmt"
	"strings"
)

// DType is how the backbone's weights are stored.
type DType string

// The weight formats the planner knows.
const (
	DTypeAuto DType = "auto" // bf16 if it fits, else the smallest format that does
	BF16      DType = "bf16"
	FP16      DType = "fp16"
	FP8       DType = "fp8"
	Int8      DType = "int8"
	AWQ       DType = "awq"  // 4-bit, activation-aware
	GPTQ      DType = "gptq" // 4-bit
)

// KVDType is how the KV cache is stored.
type KVDType string

// KV cache formats.
const (
	KVAuto KVDType = "auto" // the model's 16-bit type; fp8 if only that fits
	KV16   KVDType = "bf16" // reported as the weights' 16-bit type
	KVFP8  KVDType = "fp8"
)

// Int4GroupSize is the AWQ/GPTQ group: 128 weights share one fp16 scale
// and one 4-bit zero point.
const Int4GroupSize = 128

// ParseDType reads a --dtype value.
func ParseDType(s string) (DType, error) {
	switch d := DType(strings.ToLower(s)); d {
	case "", DTypeAuto:
		return DTypeAuto, nil
	case BF16, FP16, FP8, Int8, AWQ, GPTQ:
		return d, nil
	case "bfloat16":
		return BF16, nil
	case "float16", "half":
		return FP16, nil
	}
	return "", fmt.Errorf("unknown dtype %q (bf16, fp16, fp8, int8, awq, gptq or auto)", s)
}

// ParseKVDType reads a --kv-dtype value.
func ParseKVDType(s string) (KVDType, error) {
	switch d := KVDType(strings.ToLower(s)); d {
	case "", KVAuto:
		return KVAuto, nil
	case KVFP8, "fp8_e4m3", "fp8_e5m2":
		return KVFP8, nil
	case KV16, "fp16", "bfloat16":
		return KV16, nil
	}
	return "", fmt.Errorf("unknown kv dtype %q (auto or fp8)", s)
}

// BytesPerParam is one quantizable weight's size in d.
func (d DType) BytesPerParam() float64 {
	switch d {
	case FP8, Int8:
		return 1
	case AWQ, GPTQ:
		// Half a byte, plus a 2-byte scale and a half-byte zero per group.
		return 0.5 + 2.5/Int4GroupSize
	}
	return 2
}

// Int4 says whether d is a 4-bit format.
func (d DType) Int4() bool { return d == AWQ || d == GPTQ }

// Bytes is one KV element's size.
func (k KVDType) Bytes() float64 {
	if k == KVFP8 {
		return 1
	}
	return 2
}

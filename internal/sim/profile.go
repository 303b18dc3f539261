package sim

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed profiles/*.yaml
var builtinProfiles embed.FS

// Profile describes one simulated engine deployment: its limits, its cost
// model and its media token costs. It is data: users describe their own
// engines in YAML with the same keys.
type Profile struct {
	// Name is the profile's name and the default model name reported.
	Name string `yaml:"name"`
	// Description says what the profile models, for --help and /v1/models.
	Description string `yaml:"description"`

	// MaxModelLen is the context length: prompt + max_tokens must fit.
	MaxModelLen int `yaml:"max_model_len"`
	// MaxNumSeqs caps the running batch (vLLM --max-num-seqs).
	MaxNumSeqs int `yaml:"max_num_seqs"`
	// MaxNumBatchedTokens is the per-step token budget; longer prefills are
	// chunked across steps (vLLM --max-num-batched-tokens). Default 8192.
	MaxNumBatchedTokens int `yaml:"max_num_batched_tokens"`
	// KVCacheTokens is the KV-cache capacity in tokens; 0 means unlimited.
	KVCacheTokens int `yaml:"kv_cache_tokens"`
	// BlockSize is the KV-cache block size in tokens (vLLM --block-size). Default 16.
	BlockSize int `yaml:"block_size"`
	// PrefixCaching turns on automatic prefix caching, as vLLM V1 does by
	// default (--enable-prefix-caching): a prompt's full KV blocks stay in
	// the cache after its sequence ends, found again by a chained hash of
	// their tokens, so a later prompt with the same beginning (system
	// prompt, earlier turns, byte for byte) prefills only the rest; the
	// least recently used are evicted when blocks are needed. Default true;
	// false recomputes every prompt.
	PrefixCaching *bool `yaml:"prefix_caching"`

	// PrefillPerToken is the step time added per prompt token computed.
	PrefillPerToken time.Duration `yaml:"prefill_per_token"`
	// DecodeBase is the fixed time of one engine step.
	DecodeBase time.Duration `yaml:"decode_base"`
	// DecodePerSeq is the step time added per sequence in the batch.
	DecodePerSeq time.Duration `yaml:"decode_per_seq"`

	// AnswerTokens is the [min, max] answer length, drawn per request from
	// the prompt's seed and capped by max_tokens.
	AnswerTokens [2]int `yaml:"answer_tokens"`

	// ImageTokens is the prompt-token cost of one image part.
	ImageTokens int `yaml:"image_tokens"`
	// AudioTokens is the prompt-token cost of one audio part.
	AudioTokens int `yaml:"audio_tokens"`
	// VideoTokens is the prompt-token cost of one video_url part.
	VideoTokens int `yaml:"video_tokens"`
	// VideoFrameTokens is the cost of one frame of a Model Studio "video"
	// frame list.
	VideoFrameTokens int `yaml:"video_frame_tokens"`

	// AudioOut declares that the engine can answer with audio
	// (modalities ["text","audio"]).
	AudioOut bool `yaml:"audio_output"`
	// EmbeddingDims is the length of /v1/embeddings vectors.
	EmbeddingDims int `yaml:"embedding_dims"`
}

// prefixCaching reports whether the engine caches prompt blocks (default on).
func (p Profile) prefixCaching() bool { return p.PrefixCaching == nil || *p.PrefixCaching }

// AudioOutput reports whether the profile can answer with audio.
func (p Profile) AudioOutput() bool { return p.AudioOut }

// zeroLatency reports whether the profile has no time cost at all, so
// requests bypass the scheduler.
func (p Profile) zeroLatency() bool {
	return p.PrefillPerToken == 0 && p.DecodeBase == 0 && p.DecodePerSeq == 0
}

// ProfileNames lists the built-in profiles, sorted.
func ProfileNames() []string {
	entries, _ := fs.ReadDir(builtinProfiles, "profiles") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// LoadProfile returns a built-in profile by name, or reads a YAML file when
// nameOrPath looks like a path (has a slash or a .yaml/.yml suffix).
func LoadProfile(nameOrPath string) (Profile, error) {
	var (
		data []byte
		err  error
	)
	if strings.ContainsAny(nameOrPath, `/\`) || strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml") {
		data, err = os.ReadFile(nameOrPath)
		if err != nil {
			return Profile{}, fmt.Errorf("sim profile: %w", err)
		}
	} else {
		data, err = builtinProfiles.ReadFile(path.Join("profiles", nameOrPath+".yaml"))
		if err != nil {
			return Profile{}, fmt.Errorf("sim profile %q: unknown (built-in: %s)", nameOrPath, strings.Join(ProfileNames(), ", "))
		}
	}
	p, err := ParseProfile(data)
	if err != nil {
		return Profile{}, fmt.Errorf("sim profile %s: %w", nameOrPath, err)
	}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(strings.TrimSuffix(path.Base(strings.ReplaceAll(nameOrPath, `\`, "/")), ".yaml"), ".yml")
	}
	return p, nil
}

// ParseProfile decodes a YAML profile strictly (unknown keys are errors),
// applies defaults and validates it.
func ParseProfile(data []byte) (Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("decode: %w", err)
	}
	p.applyDefaults()
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

func (p *Profile) applyDefaults() {
	if p.BlockSize == 0 {
		p.BlockSize = 16
	}
	if p.MaxNumBatchedTokens == 0 {
		p.MaxNumBatchedTokens = 8192
	}
	if p.MaxNumSeqs == 0 {
		p.MaxNumSeqs = 256
	}
	if p.EmbeddingDims == 0 {
		p.EmbeddingDims = 256
	}
	if p.AnswerTokens == [2]int{} {
		p.AnswerTokens = [2]int{16, 64}
	}
}

// Validate reports every inconsistency in the profile at once.
func (p Profile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.MaxModelLen <= 0 {
		bad("max_model_len must be positive, got %d", p.MaxModelLen)
	}
	if p.MaxNumSeqs <= 0 {
		bad("max_num_seqs must be positive, got %d", p.MaxNumSeqs)
	}
	if p.MaxNumBatchedTokens <= 0 {
		bad("max_num_batched_tokens must be positive, got %d", p.MaxNumBatchedTokens)
	}
	if p.KVCacheTokens < 0 {
		bad("kv_cache_tokens must not be negative, got %d", p.KVCacheTokens)
	}
	if p.BlockSize <= 0 {
		bad("block_size must be positive, got %d", p.BlockSize)
	}
	if p.KVCacheTokens > 0 && p.KVCacheTokens < p.BlockSize {
		bad("kv_cache_tokens (%d) is less than one block (%d)", p.KVCacheTokens, p.BlockSize)
	}
	for name, d := range map[string]time.Duration{"prefill_per_token": p.PrefillPerToken, "decode_base": p.DecodeBase, "decode_per_seq": p.DecodePerSeq} {
		if d < 0 {
			bad("%s must not be negative, got %s", name, d)
		}
	}
	if p.AnswerTokens[0] < 1 || p.AnswerTokens[1] < p.AnswerTokens[0] {
		bad("answer_tokens must be [min, max] with 1 <= min <= max, got %v", p.AnswerTokens)
	}
	for name, n := range map[string]int{"image_tokens": p.ImageTokens, "audio_tokens": p.AudioTokens, "video_tokens": p.VideoTokens, "video_frame_tokens": p.VideoFrameTokens} {
		if n < 0 {
			bad("%s must not be negative, got %d", name, n)
		}
	}
	if p.EmbeddingDims <= 0 {
		bad("embedding_dims must be positive, got %d", p.EmbeddingDims)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

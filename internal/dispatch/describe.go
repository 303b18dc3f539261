package dispatch

import "strconv"

// Describe says what the core did for an answer, as the headers the
// front ends send with it: set gets each one's HTTP name, its gRPC
// metadata key (the same, lowercase) and its value. Which model answered
// (X-Omnigate-Model), which deployment, what the cache did and how
// similar a semantic hit was, why the request moved down its fallback
// chain ("qwen3-omni-30b; reason=503"), what was clamped, why automatic
// routing chose the tier, and the escalation, if any.
func (a *Answer) Describe(call *Call, set func(name, key, value string)) {
	set("X-Omnigate-Model", "x-omnigate-model", a.Model.Name)
	if a.Deployment != nil { // nil: the cache answered
		set("X-Omnigate-Deployment", "x-omnigate-deployment", a.Deployment.Config.Name)
	}
	if a.Cache != "" {
		set("X-Omnigate-Cache", "x-omnigate-cache", a.Cache)
		if a.Similarity > 0 {
			set("X-Omnigate-Cache-Similarity", "x-omnigate-cache-similarity", strconv.FormatFloat(float64(a.Similarity), 'f', 4, 32))
		}
	}
	if a.FallbackReason != "" {
		set("X-Omnigate-Fallback", "x-omnigate-fallback", call.Requested()+"; reason="+a.FallbackReason)
	}
	if a.Clamped != "" {
		set("X-Omnigate-Clamped", "x-omnigate-clamped", a.Clamped)
	}
	if a.Route != "" {
		set("X-Omnigate-Route", "x-omnigate-route", a.Route)
	}
	if a.Escalated != "" {
		set("X-Omnigate-Escalated", "x-omnigate-escalated", a.Escalated)
	}
	call.DescribeLimits(set)
}

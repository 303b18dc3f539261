package dispatch

import "testing"

func TestAnswerText(t *testing.T) {
	whole := `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":" Paris is the capital. "},"finish_reason":"stop"}]}`
	stream := "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Paris is\"}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" the capital.\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n"
	tools := `{"choices":[{"message":{"tool_calls":[{"function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}]}`
	toolStream := "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\ndata: [DONE]\n\n"
	for _, tc := range []struct{ a, b string }{{whole, stream}, {tools, toolStream}} {
		if x, y := answerText([]byte(tc.a)), answerText([]byte(tc.b)); x != y || x == "" {
			t.Errorf("whole %q and streamed %q read differently", x, y)
		}
	}
	if answerText([]byte(whole)) == answerText([]byte(`{"choices":[{"message":{"content":"Lyon"}}]}`)) {
		t.Error("two answers read the same")
	}
}

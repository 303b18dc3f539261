package sim

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// These tests drive the simulator with the official Go SDK, as application
// code would, and decode tool calls, logprobs and structured output with the
// SDK's own types.

func weatherTool(t *testing.T) openai.ChatCompletionToolUnionParam {
	t.Helper()
	var params shared.FunctionParameters
	if err := json.Unmarshal([]byte(weatherSchema), &params); err != nil {
		t.Fatal(err)
	}
	return openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather", Description: openai.String("Weather for a city"), Parameters: params})
}

func TestToolsSDK(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	ctx := context.Background()
	params := chatParams("instant", "What is the weather in Oslo?")
	params.Tools = []openai.ChatCompletionToolUnionParam{weatherTool(t)}
	params.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_weather"})

	r, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Choices[0]
	if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || c.Message.Content != "" {
		t.Fatalf("choice %s", c.RawJSON())
	}
	tc := c.Message.ToolCalls[0]
	if tc.Type != "function" || tc.Function.Name != "get_weather" || !strings.HasPrefix(tc.ID, "call_") {
		t.Errorf("tool call %s", tc.RawJSON())
	}
	var args struct {
		City  string `json:"city"`
		Unit  string `json:"unit"`
		Days  int    `json:"days"`
		Where struct{ Lat, Lon float64 }
	}
	if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil {
		t.Fatalf("arguments %q: %v", tc.Function.Arguments, err)
	}
	if args.City == "" || (args.Unit != "celsius" && args.Unit != "fahrenheit") || args.Days < 1 || args.Days > 14 {
		t.Errorf("arguments %+v", args)
	}

	// Streamed, the accumulator reports the finished call and builds the same message.
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	var finished []openai.FinishedChatCompletionToolCall
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if call, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, call)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	got := acc.Choices[0].Message.ToolCalls
	if len(got) != 1 || got[0].ID != tc.ID || got[0].Function.Arguments != tc.Function.Arguments || acc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("accumulated %+v, finish %s", got, acc.Choices[0].FinishReason)
	}
	if len(finished) != 1 || finished[0].Arguments != tc.Function.Arguments || finished[0].ID != tc.ID {
		t.Errorf("finished calls %+v", finished)
	}

	// The tool's result goes back; under auto the model now answers in text.
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	params.Messages = append(params.Messages, c.Message.ToParam(), openai.ToolMessage(`{"temp":7}`, tc.ID))
	r2, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Choices[0].FinishReason != "stop" || r2.Choices[0].Message.Content == "" || r2.Usage.PromptTokens <= r.Usage.PromptTokens {
		t.Errorf("after the tool result: %s", r2.RawJSON())
	}
}

func TestLogprobsSDK(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	ctx := context.Background()
	params := chatParams("instant", "Count the waves.")
	params.Logprobs = openai.Bool(true)
	params.TopLogprobs = openai.Int(3)
	r, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	lp := r.Choices[0].Logprobs.Content
	if int64(len(lp)) != r.Usage.CompletionTokens {
		t.Fatalf("%d logprobs for %d tokens", len(lp), r.Usage.CompletionTokens)
	}
	var text strings.Builder
	for _, e := range lp {
		text.WriteString(e.Token)
		if len(e.TopLogprobs) != 3 || e.TopLogprobs[0].Token != e.Token || e.Logprob > 0 || e.TopLogprobs[1].Logprob > e.Logprob {
			t.Errorf("entry %s", e.RawJSON())
		}
	}
	if text.String() != r.Choices[0].Message.Content {
		t.Errorf("tokens spell %q, content %q", text.String(), r.Choices[0].Message.Content)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var streamed []string
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			for _, e := range c.Logprobs.Content {
				streamed = append(streamed, e.Token)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range lp {
		want = append(want, e.Token)
	}
	if diff := cmp.Diff(want, streamed); diff != "" {
		t.Errorf("streamed logprob tokens (-whole +streamed):\n%s", diff)
	}
}

func TestStructuredOutputSDK(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	client := sdkClient(srv)
	var sch map[string]any
	if err := json.Unmarshal([]byte(timeSchema), &sch); err != nil {
		t.Fatal(err)
	}
	params := chatParams("instant", "What time zone?")
	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "zone", Schema: sch, Strict: openai.Bool(true)}}}
	r, err := client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Zone string }
	if err := json.Unmarshal([]byte(r.Choices[0].Message.Content), &out); err != nil || (out.Zone != "UTC" && out.Zone != "CET" && out.Zone != "PST") {
		t.Errorf("content %q (%v)", r.Choices[0].Message.Content, err)
	}
}

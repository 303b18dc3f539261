# omnigate — common tasks. `make run` serves both tiers on the simulator at
# 127.0.0.1:8080; `make test` runs everything CI runs.
GO      ?= go
BIN     ?= bin/omnigate
FUZZTIME ?= 10s

.PHONY: run build test vet fuzz bench bench-balance bench-batch loadtest chaos proto clean

run:
	$(GO) run ./cmd/omnigate serve

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/omnigate

vet:
	$(GO) mod tidy -diff                                    # go.mod and go.sum are tidy
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...                            # the gateway and its tests build on macOS
	GOOS=windows $(GO) build -o /dev/null ./cmd/omnigate    # and the binary on Windows
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

test: vet
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -count=1 -run '^TestAllocationBudget$$' ./internal/app  # counts need the race detector off

# Fuzzing of the request parser, the SSE reader, the upstream client's
# chunked decoding (against net/http's) and the gRPC API's writing of
# answers as wire format (against reading them into messages). Not in `test`: random inputs make a
# nondeterministic gate; `go test` replays the committed corpora instead.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/api/openai
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./internal/sse
	$(GO) test -run '^$$' -fuzz '^FuzzChunkedBody$$' -fuzztime $(FUZZTIME) ./internal/backend/h1
	$(GO) test -run '^$$' -fuzz '^FuzzChunkWriter$$' -fuzztime $(FUZZTIME) ./internal/api/grpc
	$(GO) test -run '^$$' -fuzz '^FuzzChatWriter$$' -fuzztime $(FUZZTIME) ./internal/api/grpc
	$(GO) test -run '^$$' -fuzz '^FuzzChunkWriterStream$$' -fuzztime $(FUZZTIME) ./internal/api/grpc

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

loadtest: build
	./scripts/bench.sh

# The chaos suite's long mode (docs/chaos.md): ten times the requests and
# five kills and restarts of a replica. Not in `test`, which runs the
# short mode (`go test ./e2e -run TestChaos`).
chaos:
	OMNIGATE_CHAOS=long $(GO) test -count=1 -timeout 30m -run '^TestChaos$$' -v ./e2e

# The balancing and admission benchmarks' long mode (docs/balancing.md):
# 20 s runs instead of 4 s, and a flood of 5,000 requests. `make test`
# runs the short mode.
bench-balance:
	OMNIGATE_BALANCE=long $(GO) test -count=1 -timeout 30m -run '^(TestBalance|TestAdmission|TestFlood)' -v ./e2e

# The Batch API's throughput at 10,000 lines beside interactive traffic
# (README, docs/jobs.md). `make test` runs 300.
bench-batch:
	OMNIGATE_BATCH=long $(GO) test -count=1 -timeout 30m -run '^TestBatchThroughput$$' -v ./e2e

# The gRPC API's Go code (proto/omnigate/v1), committed next to the
# .proto. Generated with protoc 3.21.12 (Debian's protobuf-compiler, whose
# include directory has google/protobuf/struct.proto), protoc-gen-go
# v1.36.12 and protoc-gen-go-grpc v1.6.2:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PROTO_INCLUDE ?= /usr/include
proto:
	protoc -I proto -I $(PROTO_INCLUDE) \
		--go_out=. --go_opt=module=github.com/omnigate/omnigate \
		--go-grpc_out=. --go-grpc_opt=module=github.com/omnigate/omnigate \
		proto/omnigate/v1/omnigate.proto

clean:
	rm -rf bin

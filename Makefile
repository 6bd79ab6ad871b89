# shovel — build, test and run. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN      := bin/shovel
# How long each fuzz target runs in `make fuzz`: a duration (10s) or a count
# of executions (20000x). `make test` uses a count: with a duration, Go 1.26's
# fuzz coordinator can report its own deadline as a failure with no crasher
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 10s

.PHONY: help build test test-short fuzz lint run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/shovel (cgo: confluent-kafka-go bundles librdkafka)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/shovel

# The integration tests start a Kafka-protocol broker (kfake) in-process and
# the real carbon-cache from Debian's graphite-carbon (.ci/run installs it);
# without carbon-cache they skip, except under CI=true where they fail.
test: lint ## vet, every test (integration included), fuzz regression, benchmark smoke run
	$(GO) test -count=1 -race -timeout 15m ./...
	# The RSS bounds of docs/memory.md hold without the race detector only.
	$(GO) test -count=1 -timeout 10m -run '^(TestMemory|TestIsolation)' ./cmd/shovel
	$(MAKE) fuzz FUZZTIME=20000x
	$(GO) test -run '^$$' -bench . -benchtime 1x ./decoders/... ./outputs/... ./router/ > /dev/null
	$(MAKE) bench-smoke

test-short: ## unit tests only: no broker, no carbon-cache
	$(GO) test -short -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg > /tmp/shovel-fuzz.log 2>&1 || { cat /tmp/shovel-fuzz.log; exit 1; }; \
	  done; \
	done

lint: ## gofmt and go vet
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

run: build ## run the router on the built-in default config (configs/shovel.yaml)
	$(BIN) route

clean: ## remove build output
	rm -rf bin

.PHONY: demo
demo: build ## run everything in one process: embedded Kafka, KPI publisher, router; samples on stdout and into Carbon on localhost
	$(BIN) demo

.PHONY: carbon carbon-stop
carbon: ## start a private carbon-cache (Debian's graphite-carbon) on free loopback ports in .carbon; prints the ports
	deploy/carbon.sh start .carbon

carbon-stop: ## stop the carbon-cache of make carbon
	deploy/carbon.sh stop .carbon

# Benchmarks (BENCHMARKS.md). BENCH_FLAGS goes to the end-to-end harness,
# e.g. BENCH_FLAGS='-partitions 1,4,8 -X fetch.queue.backoff.ms=10'.
BENCH_BIN   := bin/shovel-bench
BENCH_FLAGS ?=
.PHONY: bench bench-smoke bench-outage bench-harness

bench-harness:
	CGO_ENABLED=1 $(GO) build -o $(BENCH_BIN) ./cmd/shovel-bench

bench: build bench-harness ## Go micro-benchmarks (-benchmem), then the end-to-end harness: 1M messages through bin/shovel (BENCH_FLAGS=...)
	$(GO) test -run '^$$' -bench . -benchmem ./decoders/... ./outputs/... ./router/... ./cmd/shovel-bench/
	$(BENCH_BIN) -shovel $(BIN) $(BENCH_FLAGS)

bench-smoke: build bench-harness ## tiny end-to-end runs (20 000 messages, 5% bad; a 3 s Carbon outage): fail only on missing or wrong samples
	$(BENCH_BIN) -shovel $(BIN) -messages 20000 -bad 0.05 -idle 30s
	$(BENCH_BIN) -shovel $(BIN) -messages 20000 -outage 3s -idle 30s

bench-outage: build bench-harness ## Carbon away for 60 s while the topic grows: shovel's RSS before, during and after
	$(BENCH_BIN) -shovel $(BIN) -messages 200000 -partitions 4 -outage 60s $(BENCH_FLAGS)

# How long `make soak` runs, as a Go duration.
SOAKTIME ?= 3m

.PHONY: soak
soak: ## soak test: steady flow, 1% bad messages, Carbon restarted every 30s; fails on loss or growth (SOAKTIME=3m)
	SHOVEL_SOAK=1 SHOVEL_SOAK_DURATION=$(SOAKTIME) $(GO) test -count=1 -run '^TestSoak$$' -timeout 60m -v ./cmd/shovel

.PHONY: soak-hostile
soak-hostile: ## soak test, hostile mix: 1 MB, header-heavy and amplifying messages, a reload every 5s, Carbon away 2s in 10s; fails on loss, growth or RSS past docs/memory.md's bound (SOAKTIME=3m)
	SHOVEL_SOAK=1 SHOVEL_SOAK_HOSTILE=1 SHOVEL_SOAK_DURATION=$(SOAKTIME) $(GO) test -count=1 -run '^TestSoak$$' -timeout 60m -v ./cmd/shovel

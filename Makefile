# shovel — build, test and run. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN      := bin/shovel
# Seconds each fuzz target runs in `make fuzz` (CI runs it as a regression check).
FUZZTIME ?= 10s

.PHONY: help build test test-short fuzz lint run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/shovel (cgo: confluent-kafka-go bundles librdkafka)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/shovel

# The integration tests start a Kafka-protocol broker (kfake) in-process and
# the real carbon-cache from Debian's graphite-carbon (.ci/run installs it);
# without carbon-cache they skip, except under CI=true where they fail.
test: lint ## vet, then run every test, integration tests included
	$(GO) test -count=1 -race -timeout 15m ./...
	$(MAKE) fuzz FUZZTIME=5s

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

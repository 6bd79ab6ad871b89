# syntax=docker/dockerfile:1
# Multi-stage build. confluent-kafka-go links a bundled static librdkafka
# through cgo, so the builder needs gcc and the runtime needs glibc; the
# distroless base image has glibc and CA certificates and nothing else.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/shovel ./cmd/shovel

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/shovel /usr/local/bin/shovel
COPY configs/shovel.yaml /etc/shovel/shovel.yaml
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/shovel"]
CMD ["route", "--config", "/etc/shovel/shovel.yaml"]

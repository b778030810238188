VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test vet demo bench clean

build:
	go build -ldflags "$(LDFLAGS)" -o bin/thingsync ./cmd/thingsync

vet:
	go vet ./...

test: vet
	go test -p 2 -timeout 9m ./...

demo: build
	bin/thingsync demo

bench: build
	go run ./cmd/benchtable

clean:
	rm -rf bin demo.duckdb demo.duckdb.wal .bench

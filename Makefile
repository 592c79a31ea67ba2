# npllm — see README.md. Every target works on a fresh Debian 12 as root
# once .ci/run (or the apt-get line in the README) has installed the tools.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin
XML      := $(shell find dbus packaging systemd -name '*.xml' -o -name '*.conf' -o -name '*.policy' -o -name '*.svg' 2>/dev/null)
# Integration tests start daemons and buses: run packages one at a time.
TESTFLAGS ?= -p 1 -count=1 -timeout 30m

MCPCLIENT := desktop/mcp/testclient

.PHONY: all build run test bench lint clean generate check-generated npm-deps screenshot

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Builds, then runs npllmd on a private bus (or shows the installed one).
run: build
	$(BIN)/npllm-devbus --bin $(BIN)

test: lint check-generated npm-deps
	$(GO) test $(TESTFLAGS) ./...

# The official MCP SDK client the bridge's tests drive (npm registry).
npm-deps:
	@test -d $(MCPCLIENT)/node_modules/@modelcontextprotocol/sdk || npm ci --prefix $(MCPCLIENT) --no-audit --no-fund

# The README's picture: real notifications (dunst under Xvfb) and the tray.
screenshot: build
	@mkdir -p docs
	$(BIN)/npllm-devbus --bin $(BIN) --screenshot docs/screenshot.png

# Rebuilds the eBPF objects and their Go loaders (needs clang and
# libbpf-dev). vmlinux.h is refreshed only by "make vmlinux" (bpftool), as
# it describes the kernel of the machine that dumps it.
generate:
	cd bpf && $(GO) generate ./...
	cd sensors && ./syscall_names.sh

vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

# Fails when the committed bpf2go outputs are not what the sources compile to.
check-generated: generate
	@git diff --exit-code --stat -- bpf/ sensors/syscall_names_amd64.go || { echo "generated files are stale; run make generate and commit"; exit 1; }

bench: build npm-deps
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -count 1 ./...

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './vendor/*')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	xmllint --noout $(XML)
	desktop-file-validate packaging/desktop/*.desktop

clean:
	rm -rf $(BIN) dist $(MCPCLIENT)/node_modules

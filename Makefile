# npllm — see README.md. "make test" and "make run" work on a fresh Debian 12
# as root: they first install what they need (make deps, from deps.txt).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin
XML      := $(shell find dbus packaging systemd \( -name '*.xml' -o -name '*.conf' -o -name '*.policy' -o -name '*.svg' \) -not -path '*/sysusers/*' 2>/dev/null)
# Integration tests start daemons and buses: run packages one at a time.
TESTFLAGS ?= -p 1 -count=1 -timeout 30m

MCPCLIENT := desktop/mcp/testclient

# Packages: Debian-valid version from the commit, static stripped binaries.
PKG_VERSION ?= 0.1.0+git$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
STAGE    := dist/stage
DESTDIR  ?=

.PHONY: all build run test bench fuzz lint staticcheck deps clean generate check-generated npm-deps screenshot stage deb rpm install

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Builds, then runs npllmd on a private bus (or shows the installed one).
run: deps build
	$(BIN)/npllm-devbus --bin $(BIN)

test: deps lint check-generated
	$(GO) test $(TESTFLAGS) ./...

# The method-table fuzzer against the real npllmd for 5 minutes (make test
# runs it for 10 s).
fuzz:
	NPLLM_FUZZ_DURATION=$${NPLLM_FUZZ_DURATION:-5m} $(GO) test $(TESTFLAGS) -run TestMethodTableFuzz ./dbus/server/

# As root: apt-get installs the package of every missing tool in deps.txt
# (not root: prints the command), then the MCP test client. Nothing missing:
# instant and offline. DEPS_GROUPS adds "screenshot" or "vmlinux".
DEPS_GROUPS ?= test
deps:
	@./.ci/deps $(DEPS_GROUPS)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory npm-deps; else echo "deps: no npm, so no MCP test client"; fi

# The official MCP SDK client the bridge's tests drive (npm registry).
npm-deps:
	@test -d $(MCPCLIENT)/node_modules/@modelcontextprotocol/sdk || npm ci --prefix $(MCPCLIENT) --no-audit --no-fund

# The README's picture: real notifications (dunst under Xvfb) and the tray.
screenshot: build
	@$(MAKE) --no-print-directory deps DEPS_GROUPS="test screenshot"
	@mkdir -p docs
	$(BIN)/npllm-devbus --bin $(BIN) --screenshot docs/screenshot.png

# Rebuilds the eBPF objects and their Go loaders (needs clang and
# libbpf-dev). vmlinux.h is refreshed only by "make vmlinux" (bpftool), as
# it describes the kernel of the machine that dumps it.
generate:
	cd bpf && $(GO) generate ./...
	cd sensors && ./syscall_names.sh

vmlinux:
	@$(MAKE) --no-print-directory deps DEPS_GROUPS=vmlinux
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
	$(GO) tool staticcheck ./...

staticcheck:
	$(GO) tool staticcheck ./...

# What the packages and "make install" ship, built once.
stage:
	@mkdir -p $(STAGE)
	$(GO) build -trimpath -buildmode=pie -ldflags "-s -w -X main.version=$(PKG_VERSION)" -o $(STAGE)/ ./cmd/npllmd ./cmd/npllmctl ./cmd/npllm-agent ./cmd/npllm-exporter
	for m in packaging/man/*; do gzip -9n < $$m > $(STAGE)/$$(basename $$m).gz; done
	@mkdir -p $(STAGE)/completions
	$(STAGE)/npllmctl completion bash > $(STAGE)/completions/npllmctl.bash
	$(STAGE)/npllmctl completion zsh > $(STAGE)/completions/_npllmctl
	$(STAGE)/npllmctl completion fish > $(STAGE)/completions/npllmctl.fish
	printf 'npllm (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- npllm developers <npllm@example.org>  %s\n' \
		"$(PKG_VERSION)" "$$(git rev-parse --short HEAD)" "$$(date -R -d @$$(git log -1 --format=%ct))" | gzip -9n > $(STAGE)/changelog.gz

deb: stage
	NPLLM_PKG_VERSION=$(PKG_VERSION) $(GO) tool nfpm pkg --config packaging/nfpm.yaml --packager deb --target dist/

rpm: stage
	NPLLM_PKG_VERSION=$(PKG_VERSION) $(GO) tool nfpm pkg --config packaging/nfpm.yaml --packager rpm --target dist/

# Source installs: the same files in the same places, under DESTDIR.
install: stage
	install -Dm755 $(STAGE)/npllmd $(DESTDIR)/usr/libexec/npllmd
	install -Dm755 $(STAGE)/npllmctl $(DESTDIR)/usr/bin/npllmctl
	install -Dm755 $(STAGE)/npllm-agent $(DESTDIR)/usr/bin/npllm-agent
	install -Dm755 $(STAGE)/npllm-exporter $(DESTDIR)/usr/bin/npllm-exporter
	install -Dm644 systemd/npllm-exporter.service $(DESTDIR)/usr/lib/systemd/system/npllm-exporter.service
	install -Dm644 systemd/npllm-exporter.socket $(DESTDIR)/usr/lib/systemd/system/npllm-exporter.socket
	install -Dm644 packaging/prometheus/npllm.rules.yml $(DESTDIR)/usr/share/npllm/prometheus/npllm.rules.yml
	install -Dm644 systemd/npllm.catalog $(DESTDIR)/usr/lib/systemd/catalog/npllm.catalog
	install -Dm644 packaging/sysusers/npllm-exporter.conf $(DESTDIR)/usr/lib/sysusers.d/npllm-exporter.conf
	install -Dm644 systemd/npllmd.service $(DESTDIR)/usr/lib/systemd/system/npllmd.service
	install -Dm644 systemd/npllm-agent.service $(DESTDIR)/usr/lib/systemd/user/npllm-agent.service
	install -Dm644 packaging/dbus/org.npllm.Assistant.conf $(DESTDIR)/usr/share/dbus-1/system.d/org.npllm.Assistant.conf
	install -Dm644 packaging/dbus/org.npllm.Assistant.service $(DESTDIR)/usr/share/dbus-1/system-services/org.npllm.Assistant.service
	install -Dm644 dbus/api/org.npllm.Assistant1.xml $(DESTDIR)/usr/share/dbus-1/interfaces/org.npllm.Assistant1.xml
	install -Dm644 packaging/polkit/org.npllm.Assistant.policy $(DESTDIR)/usr/share/polkit-1/actions/org.npllm.Assistant.policy
	install -Dm644 packaging/desktop/org.npllm.Assistant.desktop $(DESTDIR)/usr/share/applications/org.npllm.Assistant.desktop
	install -Dm644 packaging/desktop/org.npllm.Agent.desktop $(DESTDIR)/etc/xdg/autostart/org.npllm.Agent.desktop
	install -Dm644 packaging/icons/org.npllm.Assistant.svg $(DESTDIR)/usr/share/icons/hicolor/scalable/apps/org.npllm.Assistant.svg
	for s in ok warning critical; do install -Dm644 packaging/icons/npllm-$$s.svg $(DESTDIR)/usr/share/icons/hicolor/scalable/status/npllm-$$s.svg; done
	test -e $(DESTDIR)/etc/npllm/npllmd.toml || install -Dm644 packaging/npllmd.toml $(DESTDIR)/etc/npllm/npllmd.toml
	install -Dm644 $(STAGE)/completions/npllmctl.bash $(DESTDIR)/usr/share/bash-completion/completions/npllmctl
	install -Dm644 $(STAGE)/completions/_npllmctl $(DESTDIR)/usr/share/zsh/vendor-completions/_npllmctl
	install -Dm644 $(STAGE)/completions/npllmctl.fish $(DESTDIR)/usr/share/fish/vendor_completions.d/npllmctl.fish
	install -Dm644 $(STAGE)/npllmd.8.gz $(DESTDIR)/usr/share/man/man8/npllmd.8.gz
	install -Dm644 $(STAGE)/npllmctl.1.gz $(DESTDIR)/usr/share/man/man1/npllmctl.1.gz
	install -Dm644 $(STAGE)/npllm-agent.1.gz $(DESTDIR)/usr/share/man/man1/npllm-agent.1.gz
	install -Dm644 $(STAGE)/npllm-exporter.1.gz $(DESTDIR)/usr/share/man/man1/npllm-exporter.1.gz

clean:
	rm -rf $(BIN) dist $(MCPCLIENT)/node_modules

# sockmail. `make help` lists the targets; README.md explains them.

GO            ?= go
GOBIN         := $(shell $(GO) env GOPATH)/bin
FUZZTIME      ?= 10s
FUZZPKGS      ?= ./...
# Flags of the whole-process benchmark, e.g. PROCBENCH_FLAGS='-only cold -cold-rounds 101'.
PROCBENCH_FLAGS ?=

# "make build" makes two programs (README "Make targets"): bin/sockmail, the
# command-line client (built with CLIENT_TAGS: "send" itself, "serve", "user"
# and "send --store" handed to the full build by exec), which starts about
# as fast as a minimal net/smtp program; and bin/sockmail-server, the full build
# (everything; what "go build ./cmd/sockmail" and "go install" make), which
# "make run" runs.
CLIENT_TAGS := sendonly

# How both are built: static, without cgo.
# Nothing in them needs cgo (SQLite is modernc.org/sqlite, pure Go), and a
# static binary starts about 1 ms sooner: no dynamic loader, no libc to map
# (issue 10 item 4). Go's own DNS resolver and user lookup read
# /etc/resolv.conf, /etc/hosts, /etc/nsswitch.conf and /etc/passwd
# themselves (no NSS modules). Tests keep the default: -race needs cgo.
SOCKMAIL_ENV := CGO_ENABLED=0

STATICCHECK_VERSION := v0.8.2
TEMPL_VERSION       := v0.3.1100
# An installed binary of the pinned version is used as is; otherwise
# `go run pkg@version` fetches and builds it (cached after the first time).
STATICCHECK := $(shell for b in staticcheck $(GOBIN)/staticcheck; do \
	$$b -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))' && { echo $$b; exit; }; done; \
	echo $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))
TEMPL := $(shell for b in templ $(GOBIN)/templ; do \
	[ "$$($$b version 2>/dev/null)" = '$(TEMPL_VERSION)' ] && { echo $$b; exit; }; done; \
	echo $(GO) run github.com/a-h/templ/cmd/templ@$(TEMPL_VERSION))

.PHONY: help run build test testservers testservers-down testservers-status \
	lint generate check-generated bench fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 22

run: ## build bin/sockmail-server (as "make build" does) and run the web app with its embedded defaults
	@if [ -x bin/sockmail-server ]; then echo "make run: building bin/sockmail-server (only what changed: seconds) ..."; \
	else echo "make run: building bin/sockmail-server; the first build compiles every dependency, about 30 s ..."; fi
	$(SOCKMAIL_ENV) $(GO) build -o bin/sockmail-server ./cmd/sockmail
	@echo "make run: starting bin/sockmail-server serve (Ctrl-C stops it)"
	bin/sockmail-server serve

build: ## compile every package; bin/sockmail (the command-line client) and bin/sockmail-server (everything), static
	$(GO) build ./...
	$(SOCKMAIL_ENV) $(GO) build -tags $(CLIENT_TAGS) -o bin/sockmail ./cmd/sockmail
	$(SOCKMAIL_ENV) $(GO) build -o bin/sockmail-server ./cmd/sockmail

# go test's own -timeout (10 minutes a package by default) is a wall-clock
# deadline: the handlers package (about 40 Chromium page states, axe in
# light and dark) takes 5 minutes on this 2-core machine and twice that
# beside four CPU hogs. The tests fail by themselves when progress stops
# (testenv.StallLimit); this limit only catches a hang outside those
# waits, far above any slow machine's time.
TEST_TIMEOUT ?= 60m

test: testservers ## start the test servers, then run every test with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

testservers: ## install (apt, root) and start Postfix, Dovecot, aiosmtpd; see README
	bash .ci/servers.sh up

testservers-down: ## stop the test servers
	bash .ci/servers.sh down

testservers-status: ## tell which test servers run
	bash .ci/servers.sh status

lint: ## go vet, gofmt, staticcheck and a tidy go.mod
	$(GO) mod tidy -diff
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(STATICCHECK) ./...

generate: ## regenerate the templ components (*_templ.go)
	$(TEMPL) generate

check-generated: generate ## fail if the committed *_templ.go are not what templ generates
	@git diff --exit-code --stat -- '*_templ.go' || { \
		echo "generated files are stale: run 'make generate' and commit the result"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- '*_templ.go'); if [ -n "$$untracked" ]; then \
		echo "generated files not committed:"; echo "$$untracked"; exit 1; fi

bench: ## run the benchmarks: go test ones, then whole processes against net/smtp (internal/procbench)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./internal/procbench $(PROCBENCH_FLAGS)

fuzz: ## run every Fuzz* target in FUZZPKGS for FUZZTIME (default 10s)
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh $(FUZZPKGS)

# shoal — see README.md.
GO ?= go

.PHONY: build test test-deps check bench fuzz

build:
	$(GO) build -o shoal ./cmd/shoal

# The test command of the README and of CI: installs the interop reference
# (libtorrent), checks formatting and vet, then runs every test under -race.
test: test-deps check
	$(GO) test -race -timeout 15m ./...

test-deps:
	scripts/test-deps.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks whose figures are in README.md.
bench:
	$(GO) test ./piece/ -run '^$$' -bench 'SHA256Raw|SHA1Raw|Build' -benchtime 20x -count 3

# A short run of every fuzz target (go test -fuzz takes one at a time).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./piece/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./piece/ -run '^$$' -fuzz '^FuzzParseInfo$$' -fuzztime $(FUZZTIME)
	$(GO) test ./piece/ -run '^$$' -fuzz '^FuzzParseMagnet$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tracker/ -run '^$$' -fuzz '^FuzzParseAnnounce$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tracker/ -run '^$$' -fuzz '^FuzzLeanParseHead$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tracker/ -run '^$$' -fuzz '^FuzzUDPPacket$$' -fuzztime $(FUZZTIME)
	for f in FuzzReadMessage FuzzExtensionHandshake FuzzMetadataMsg FuzzPex FuzzHashesMsg; do \
		$(GO) test ./swarm/wire/ -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done
	$(GO) test ./swarm/lsd/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tracker/ -run '^$$' -fuzz '^FuzzSwarmTable$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tracker/ -run '^$$' -fuzz '^FuzzMemStoreArenas$$' -fuzztime $(FUZZTIME)
	$(GO) test ./daemon/rpc/ -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME)

# psl top-level driver. CMake does the real work; these targets are the entry points people and CI
# use. `make` builds build/ (RelWithDebInfo, -O2); `make test` installs the Debian packages, builds
# the normal and the ASan+UBSan trees and runs every test in both.

JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CMAKE ?= cmake
CTEST ?= ctest
CTEST_FLAGS ?= --output-on-failure --no-label-summary -j$(JOBS)
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_TIME ?= 600
CLANG_FORMAT ?= $(shell command -v clang-format-19 || command -v clang-format)

PSL := $(BUILD)/psl
EX := $(BUILD)/examples

.PHONY: all build configure test test-build test-asan deps demo bench bench-wasm bench-gateway \
        bench-ycsb bench-dnn fuzz-capsule \
        fuzz format format-check clean

all: build

deps:
	sh scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN_BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPSL_SANITIZE=ON

configure: $(BUILD)/CMakeCache.txt

# cmake's own make must not inherit our MAKEFLAGS (it would print every directory change).
CMAKE_BUILD = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(CMAKE) --build

build: $(BUILD)/CMakeCache.txt
	$(CMAKE_BUILD) $(BUILD) -j$(JOBS)

# Both trees are always tested, the ASan one first and the optimised one last, so the run ends with
# ctest's summary of the optimised build; a failure in either makes `make test` fail.
test: deps
	$(MAKE) --no-print-directory build
	$(CMAKE) -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPSL_SANITIZE=ON >/dev/null
	$(CMAKE_BUILD) $(ASAN_BUILD) -j$(JOBS)
	@echo "== ctest: $(ASAN_BUILD) (ASan + UBSan) =="
	@st=0; (cd $(ASAN_BUILD) && $(ASAN_ENV) $(CTEST) $(CTEST_FLAGS)) || st=1; \
	echo "== ctest: $(BUILD) (RelWithDebInfo) =="; \
	(cd $(BUILD) && $(CTEST) $(CTEST_FLAGS)) || st=1; \
	exit $$st

test-build: build
	cd $(BUILD) && $(CTEST) $(CTEST_FLAGS)

test-asan: $(ASAN_BUILD)/CMakeCache.txt
	$(CMAKE_BUILD) $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && $(ASAN_ENV) $(CTEST) $(CTEST_FLAGS)

# Builds quietly (the log is in $(BUILD)/demo-build.log), then runs the example functions.
demo: $(BUILD)/CMakeCache.txt
	@$(CMAKE_BUILD) $(BUILD) -j$(JOBS) >$(BUILD)/demo-build.log 2>&1 || \
		{ cat $(BUILD)/demo-build.log; exit 1; }
	@echo '$$ psl run examples/hello.wasm'
	@$(PSL) run $(EX)/hello.wasm
	@echo '$$ psl run examples/hello.wasm alice bob'
	@$(PSL) run $(EX)/hello.wasm alice bob
	@echo '$$ echo "hello through stdin" | psl run examples/echo.wasm'
	@echo "hello through stdin" | $(PSL) run $(EX)/echo.wasm
	@echo '$$ psl run examples/primes.wasm 1000000'
	@$(PSL) run $(EX)/primes.wasm 1000000
	@echo '# a local cluster: stateful functions deployed and invoked, then a full restart'
	@sh scripts/demo-cluster.sh $(PSL) $(EX) $(BUILD)/demo-cluster

# Every column: native (glibc, musl), wasm2c, the interpreter, jit and auto with every compile
# counted (--no-cache), node. BENCH_JIT_CACHE=1 times the JIT columns with the code cache.
PSL_TIERS ?= jit auto
BENCH_JIT_CACHE ?= 0
bench-wasm: build
	PSL_TIERS="$(PSL_TIERS)" BENCH_JIT_CACHE=$(BENCH_JIT_CACHE) bash bench/wasm/run.sh

# Invocation latency and throughput through the HTTP gateway and the CLI (a local cluster).
bench-gateway: build
	sh bench/gateway/run.sh $(BUILD)

# YCSB: psl (in-function and client mode, async and sync) against Redis and a no-op TCP echo,
# workloads C and A, 1/4/16 connections, median of 3 runs (bench/ycsb/run.sh; results in
# $(BUILD)/bench/ycsb-results).
bench-ycsb: build
	sh bench/ycsb/run.sh

# Distributed MLP training on Fashion-MNIST: K = 1, 2, 4 lambdas, sync and async (docs/dnn.md).
bench-dnn: build
	$(PSL) bench dnn --lambdas 1,2,4 --mode sync,async --csv $(BUILD)/dnn.csv \
	    --plot $(BUILD)/dnn.png

# Every benchmark suite of the project; add new ones here.
bench: bench-wasm bench-gateway bench-ycsb bench-dnn

# libFuzzer over the wasm decoder, validator and a bounded run (tests/fuzz/fuzz_wasm.c).
# FUZZ_TIME=seconds; one process on one core. New inputs go to $(FUZZ_BUILD)/corpus, crashes to
# $(FUZZ_BUILD)/ (minimize one with -minimize_crash=1, keep it in tests/regress/).
fuzz:
	@if [ ! -f tests/fuzz/fuzz_wasm.c ]; then \
		echo "make fuzz: tests/fuzz/fuzz_wasm.c does not exist yet" >&2; exit 1; fi
	$(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang-19 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPSL_FUZZ=ON -DPSL_WERROR=OFF
	$(CMAKE_BUILD) $(FUZZ_BUILD) -j$(JOBS) --target fuzz_wasm
	mkdir -p $(FUZZ_BUILD)/corpus
	$(FUZZ_BUILD)/tests/fuzz_wasm -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ \
		$(FUZZ_BUILD)/corpus $(wildcard tests/fuzz/corpus tests/regress)

# libFuzzer over the DataCapsule parsers and a storage replica (tests/fuzz/fuzz_capsule.c); same
# knobs. New inputs go to $(FUZZ_BUILD)/corpus-capsule, crashes to $(FUZZ_BUILD)/capsule-*; keep
# one in tests/regress/capsule/.
fuzz-capsule:
	$(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang-19 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPSL_FUZZ=ON -DPSL_WERROR=OFF
	$(CMAKE_BUILD) $(FUZZ_BUILD) -j$(JOBS) --target fuzz_capsule
	mkdir -p $(FUZZ_BUILD)/corpus-capsule
	$(FUZZ_BUILD)/tests/fuzz_capsule -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/capsule- \
		$(FUZZ_BUILD)/corpus-capsule tests/fuzz/corpus-capsule tests/regress/capsule

# Generated byte arrays (xxd -i, wat2wasm) are left as their tools wrote them.
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' ':!:*_module.h' ':!:*_modules.h')

format:
	$(CLANG_FORMAT) -i --style=file $(FORMAT_FILES)

format-check:
	$(CLANG_FORMAT) --dry-run --Werror --style=file $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

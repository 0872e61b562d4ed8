# Thin wrapper over Meson. Everything real lives in meson.build; this file only
# installs missing Debian packages, configures the build trees and runs them.
#
#   make run     build and run the main job
#   make check   build and run every test suite
#   make bench   optimised tree; every benchmark -> build-bench/results/*.json
#   make asan    ASan+UBSan tree build-asan; every test suite
#   make tsan    TSan tree build-tsan; the stress suite
#   make coverage  gcovr line coverage per directory (build-cov; docs/development.md)
#   make fuzz    clang libFuzzer tree build-fuzz; every target FUZZ_SECONDS (docs/fuzzing.md)
#   make fuzz-target T=NAME   one fuzz target (e.g. T=vtd)
#   make fuzz-smoke   build-fuzz, replay the fuzz corpora, every target FUZZ_SMOKE_SECONDS (CI)
#   make fuzz-afl     AFL++ tree build-afl (afl-clang-fast++); fuzz-afl-run T=NAME runs afl-fuzz
#   make fuzz-oss-test   run .clusterfuzzlite/build.sh as OSS-Fuzz would, check its output
#
# Variables: NINJA_JOBS, TEST_JOBS (default 2 each), RUN_CMD, SAN_CXX (compiler
# for the sanitizer trees, default g++, through ccache when installed),
# MESON_FLAGS (extra -D options for every tree; also applied with
# `meson configure` to trees that already exist).
# Fuzzing: FUZZ_SECONDS (per target, default 60), FUZZ_SMOKE_SECONDS (default
# 20), FUZZ_CXX (default clang++ through ccache), T (fuzz-target, fuzz-afl-run).

NINJA_JOBS ?= 2
TEST_JOBS ?= 2
# ccache when installed (scripts/setup-deps.sh installs it): Meson only adds
# it by itself when CXX is not set, as it is for the sanitizer trees.
SAN_CXX ?= $(if $(shell command -v ccache 2>/dev/null),ccache g++,g++)
MESON_FLAGS ?=

# The main job: the default workload of `viommu run` (ARCHITECTURE.md §5).
RUN_CMD ?= ./build/viommu run

comma := ,
BENCH_DIR := build-bench/tests/bench
BENCH_RESULTS := build-bench/results

# $(call meson_tree,DIR,SETUP OPTIONS[,ENV]): configure DIR unless it already
# has a build.ninja. A tree left half-configured (coredata but no build.ninja)
# is regenerated with --reconfigure, which plain `meson setup` would refuse.
define meson_tree
	@if [ ! -f $(1)/build.ninja ]; then \
	  if [ -f $(1)/meson-private/coredata.dat ]; then reconf=--reconfigure; else reconf=; fi; \
	  echo "+ $(strip $(3) meson setup $$reconf $(1) $(2) $(MESON_FLAGS))"; \
	  $(3) meson setup $$reconf $(1) $(2) $(MESON_FLAGS); \
	$(if $(strip $(MESON_FLAGS)),else meson configure $(1) $(MESON_FLAGS); )fi
	ninja -C $(1) -j$(NINJA_JOBS)
endef

SAN_TEST_ENV := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                ASAN_OPTIONS=detect_leaks=1 \
                TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps build check run bench asan tsan coverage clean format help \
        fuzz fuzz-build fuzz-target fuzz-smoke fuzz-afl fuzz-afl-run fuzz-oss-test

all: build

help:
	@sed -n '/^#   make/s/^# *//p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/setup-deps.sh

build: deps
	$(call meson_tree,build,)

check: build
	meson test -C build --print-errorlogs --num-processes $(TEST_JOBS)

run: build
	$(RUN_CMD)

bench: deps
	$(call meson_tree,build-bench,--buildtype=release -Dtests=disabled -Dbench=enabled)
	@mkdir -p $(BENCH_RESULTS)
	@found=0; \
	for exe in $(BENCH_DIR)/*; do \
	  [ -f "$$exe" ] && [ -x "$$exe" ] || continue; \
	  found=1; name=$$(basename "$$exe"); \
	  echo "+ $$exe --benchmark_out=$(BENCH_RESULTS)/$$name.json --benchmark_out_format=json"; \
	  "$$exe" --benchmark_out=$(BENCH_RESULTS)/$$name.json \
	          --benchmark_out_format=json || exit 1; \
	done; \
	if [ $$found = 0 ]; then \
	  echo "bench: no benchmark executables in $(BENCH_DIR)/ yet; nothing to run"; \
	else \
	  echo "bench: results in $(BENCH_RESULTS)/"; \
	fi

# The sanitizer tree is built at -O1 and without the benchmark binaries
# (they are not tests): the ASan build is CI's long pole on 2 cores.
asan: deps
	$(call meson_tree,build-asan,-Db_sanitize=address$(comma)undefined -Db_lundef=false -Doptimization=1 -Dbench=disabled,CXX="$(SAN_CXX)")
	$(SAN_TEST_ENV) meson test -C build-asan --print-errorlogs --num-processes $(TEST_JOBS)

tsan: deps
	$(call meson_tree,build-tsan,-Db_sanitize=thread -Dstress_only=true,CXX="$(SAN_CXX)")
	$(SAN_TEST_ENV) meson test -C build-tsan --suite stress --print-errorlogs --num-processes $(TEST_JOBS)

# Line coverage (docs/development.md, "Coverage"): g++ tree build-cov with
# -Db_coverage=true, every suite but host and lint, gcovr per directory.
# Prints the table and the goal lines; HTML in build-cov/coverage/index.html.
coverage: deps
	NINJA_JOBS=$(NINJA_JOBS) TEST_JOBS=$(TEST_JOBS) CXX="$(SAN_CXX)" MESON_FLAGS="$(MESON_FLAGS)" scripts/coverage.sh

# The fuzz tree (docs/fuzzing.md): clang, libFuzzer coverage in every library
# (-Dfuzz=true), ASan+UBSan, only the libraries, the *_fuzzer targets and
# their corpus replays. scripts/fuzz-run.sh runs the targets it finds there.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_CXX ?= $(if $(shell command -v ccache 2>/dev/null),ccache clang++,clang++)
FUZZ_SETUP := -Dfuzz=true -Dtests=disabled -Dbench=disabled \
              -Db_sanitize=address$(comma)undefined -Db_lundef=false -Doptimization=1

fuzz-build: deps
	$(call meson_tree,build-fuzz,$(FUZZ_SETUP),CXX="$(FUZZ_CXX)")

fuzz: fuzz-build
	scripts/fuzz-run.sh -b build-fuzz -s $(FUZZ_SECONDS)

fuzz-target: fuzz-build
	@if [ -z "$(T)" ]; then echo "usage: make fuzz-target T=NAME (one of: $$(scripts/fuzz-run.sh -l | tr '\n' ' '))"; exit 2; fi
	scripts/fuzz-run.sh -b build-fuzz -s $(FUZZ_SECONDS) $(T)

fuzz-smoke: fuzz-build
	$(SAN_TEST_ENV) meson test -C build-fuzz --suite fuzz --print-errorlogs --num-processes $(TEST_JOBS)
	scripts/fuzz-run.sh -b build-fuzz -s $(FUZZ_SMOKE_SECONDS)

# AFL++ (Debian's afl++): the same targets linked with AFL++'s libFuzzer
# driver (afl-clang-fast++ -fsanitize=fuzzer) in build-afl/.
fuzz-afl: deps
	scripts/fuzz-afl.sh build

fuzz-afl-run: fuzz-afl
	scripts/fuzz-afl.sh run $(T) $(FUZZ_SECONDS)

# .clusterfuzzlite/build.sh run as OSS-Fuzz runs it (slow: its own tree).
fuzz-oss-test: deps
	scripts/fuzz-oss-test.sh

clean:
	rm -rf build build-bench build-asan build-tsan

format:
	git ls-files -z -- '*.h' '*.cc' | xargs -0 -r clang-format -i

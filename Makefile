# hegate — build, run, test, benchmark.  `make run` and `make test` are the two entry points.
# Every .c under gateway/ routes/ auth/ auth/http/ qr/ qr/http/ is compiled (gateway/main.c only into the binary);
# every tests/unit/<folder>/test_*.c becomes a cmocka test, every tests/fuzz/fuzz_*.c a libFuzzer target.

CC       ?= cc
BUILD    ?= build
SAN      ?=
OPT      ?= -O2
PY       := /usr/bin/python3
CPPFLAGS += -DH2O_USE_EPOLL=1 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -Igateway/h2o-shim
CFLAGS   += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
            -fno-strict-aliasing $(SAN)
LDLIBS   := -lh2o-evloop -lhiredis -ljwt -lqrencode -lyaml -ljansson -lssl -lcrypto -lz -lpthread -lm
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CPPFLAGS += -DHEGATE_VERSION='"$(VERSION)"'

LIB_SRC  := $(filter-out gateway/main.c,$(sort $(wildcard gateway/*.c routes/*.c auth/*.c auth/http/*.c qr/*.c qr/http/*.c crypto/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
# unit tests mirror the source folders: tests/unit/<folder>/test_*.c -> $(BUILD)/tests/<folder>/test_*;
# the shared helpers (tests/unit/*.c, e.g. the redis harness) are compiled once and linked into each.
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_LIB_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_LIB_OBJ := $(UNIT_LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_HDRS := $(wildcard tests/unit/*.h)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
HDRS     := $(wildcard gateway/*.h routes/*.h auth/*.h auth/http/*.h qr/*.h qr/http/*.h crypto/*.h)

.PHONY: all deps run test layers unit integration asan fuzz bench soak clean check-format format
all: $(BUILD)/hegate

deps:
	@./scripts/deps.sh

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libhegate.a: $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/hegate: $(BUILD)/obj/gateway/main.o $(BUILD)/libhegate.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# the attack harness's client (tests/attack/): a test tool, built without sanitizers so that it attacks at full speed
$(BUILD)/attack: tests/attack/attack.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -o $@ $<

$(UNIT_LIB_OBJ): $(UNIT_HDRS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_LIB_OBJ) $(BUILD)/libhegate.a $(HDRS) $(UNIT_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(UNIT_LIB_OBJ) $(BUILD)/libhegate.a $(LDLIBS) -lcmocka

# unit: every cmocka binary, run from the repo root (they may read ../shared-like fixtures under tests/).
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# integration: pytest against the real binary, real redis-server, real clients.
integration: $(BUILD)/hegate $(BUILD)/attack
	HEGATE_BIN=$(abspath $(BUILD)/hegate) $(PY) -m pytest -q -p no:cacheprovider tests/integration

# asan: the whole suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	LSAN_OPTIONS=suppressions=$(abspath tests/integration/lsan.supp):print_suppressions=0 \
	$(MAKE) BUILD=build-asan CC=clang-14 OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" unit integration

# fuzz: build each libFuzzer target and run it briefly (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 60
fuzz:
	@set -e; mkdir -p build-fuzz; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang-14 $(CPPFLAGS) -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wno-unused-parameter \
	    -o build-fuzz/$$n $$f $(LIB_SRC) $(LDLIBS); \
	  mkdir -p build-fuzz/corpus-$$n; \
	  echo "== fuzz $$n ($(FUZZ_SECONDS)s)"; \
	  if ./build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/ build-fuzz/corpus-$$n \
	       $$( [ -d tests/fuzz/seeds/$$n ] && echo tests/fuzz/seeds/$$n ) > build-fuzz/$$n.log 2>&1; then \
	    tail -1 build-fuzz/$$n.log; \
	  else tail -60 build-fuzz/$$n.log; echo "fuzz $$n: FOUND A FAILURE (input saved under build-fuzz/)"; exit 1; fi; \
	done

# layers: the folder contract from the #include lines (no cycle, private headers private, qr core alone,
# one bearer check); scripts/check_layers.py --graph prints the folder graph.
layers:
	$(PY) scripts/check_layers.py

test: deps all
	$(MAKE) layers
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) asan
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

run: deps all
	./scripts/run.sh

bench: deps all
	./bench/run.sh

# soak: the long run of tests/integration/test_soak.py (its 45 s version is in make test): SOAK_SECONDS of mixed
# load with a reload and a Redis restart; the curve goes to docs/soak.png (and docs/soak.csv).
SOAK_SECONDS ?= 600
soak: deps all
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_OUT=$(abspath docs) HEGATE_BIN=$(abspath $(BUILD)/hegate) \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_soak.py

format:
	clang-format -i $(LIB_SRC) gateway/main.c $(HDRS) $(UNIT_SRC) $(UNIT_LIB_SRC) $(UNIT_HDRS) $(FUZZ_SRC)

clean:
	rm -rf build build-asan build-fuzz

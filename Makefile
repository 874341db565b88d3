# Lianxin build. `make` builds build/lianxin; see README for the rest.

CC      ?= cc
PKGS    := lmdb msgpack libzmq libuv libsodium jansson inih xlsxwriter libh2o openssl
OPT     ?= -O2 -g
SAN     ?=
# Error messages are cut to their buffers on purpose: silence gcc's
# -Wformat-truncation where the compiler knows the option.
NOTRUNC := $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
CFLAGS  := $(OPT) $(SAN) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           $(NOTRUNC) -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lm -lpthread
BUILD   ?= build

COMMON_SRC := $(wildcard common/*.c) $(wildcard config/*.c) $(wildcard topology/*.c)
CLI_SRC    := $(wildcard cli/*.c)
NODE_SRC   := $(wildcard node/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
APP_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o) $(NODE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit integration asan bench fuzz demo clean

all: $(BUILD)/lianxin

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/liblx.a: $(COMMON_OBJ)
	ar rcs $@ $^

$(BUILD)/lianxin: $(APP_OBJ) $(BUILD)/liblx.a
	$(CC) $(CFLAGS) -o $@ $(APP_OBJ) $(BUILD)/liblx.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/liblx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/liblx.a $(LDLIBS) -lcmocka

unit: $(UNIT_BIN) $(BUILD)/tests/lxpeer $(BUILD)/tests/lxaudit

# The test peer the integration tests use to impersonate a child node.
$(BUILD)/tests/lxpeer: tests/integration/lxpeer.c $(BUILD)/liblx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/liblx.a $(LDLIBS)

# The integration tests' hand on audit chains (appending, tampering).
$(BUILD)/tests/lxaudit: tests/integration/lxaudit.c $(BUILD)/liblx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/liblx.a $(LDLIBS)

# A wall clock moved ahead for one command (LD_PRELOAD, LX_CLOCK_SHIFT_MS).
$(BUILD)/tests/clockshift.so: tests/integration/clockshift.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -fPIC -o $@ $< -ldl

# The whole suite: unit tests, integration tests, short fuzz runs.
test: all unit $(BUILD)/tests/lxpeer $(BUILD)/tests/lxaudit $(BUILD)/tests/clockshift.so
	@BUILD=$(BUILD) tests/run-all

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build/asan CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -I. \
               $(shell pkg-config --cflags $(PKGS))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

$(BUILD)/fuzz/%: tests/fuzz/%.c $(COMMON_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS)

# Longer fuzz runs (make test runs each target for a fixed short count).
fuzz: $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	  n=$$(basename $$t); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "== $$n"; $$t -max_total_time=$${FUZZ_SECONDS:-60} -max_len=4096 \
	    $(BUILD)/fuzz/corpus-$$n tests/fuzz/seeds/$$n || exit 1; done

bench: all
	@BUILD=$(BUILD) tests/bench/run

# Installs what is missing, builds, and runs the demo.
demo:
	@scripts/install-deps
	@$(MAKE) --no-print-directory all
	@scripts/demo

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/liblx.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblx.a $(LDLIBS)

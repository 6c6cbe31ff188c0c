# unbusy — build, run, test. `make run` and `make test` install what is missing first.

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wformat=2 $(WERROR)
CPPFLAGS+= -D_GNU_SOURCE -Isrc -I/usr/include/cjson
STD     := -std=c11
LIBS    := -luv -lssl -lcrypto -lyaml -lcjson -lsqlite3 -lcares -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B       := build
SRC     := $(sort $(wildcard src/*.c src/*/*.c))
LIBSRC  := $(filter-out src/main.c,$(SRC))
OBJ     := $(patsubst src/%.c,$(B)/obj/%.o,$(SRC))
LIBOBJ  := $(patsubst src/%.c,$(B)/obj/%.o,$(LIBSRC))
AOBJ    := $(patsubst src/%.c,$(B)/asan/obj/%.o,$(SRC))
ALIBOBJ := $(patsubst src/%.c,$(B)/asan/obj/%.o,$(LIBSRC))
UNITSRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNITS   := $(patsubst tests/unit/%.c,$(B)/unit/%,$(UNITSRC))
AUNITS  := $(patsubst tests/unit/%.c,$(B)/asan/unit/%,$(UNITSRC))
FUZZSRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZREP := $(patsubst tests/fuzz/%.c,$(B)/asan/fuzz/%,$(FUZZSRC))
FAKESRC := $(sort $(wildcard tests/fakes/*.c))

# Debian packages: build, test, and what `make run` needs.
DEB_BUILD := build-essential pkg-config libuv1-dev libssl-dev libyaml-dev libcjson-dev \
             libsqlite3-dev libc-ares-dev ca-certificates
DEB_TEST  := libcmocka-dev curl prometheus chromium redis-server dnsmasq-base
DEB_NODE  := nodejs npm
DEB_FUZZ  := clang

.PHONY: all asan deps deps-test run test unit fuzz clean bench bench-overload format check-format image

all: $(B)/unbusy $(B)/fakeup

$(B)/unbusy: $(OBJ)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(B)/fakeup: $(FAKESRC) $(LIBOBJ)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $(FAKESRC) $(LIBOBJ) $(LIBS)

asan: $(B)/asan/unbusy $(B)/asan/fakeup

$(B)/asan/unbusy: $(AOBJ)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LIBS)

$(B)/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) -O1 -g $(SAN) $(WARN) -MMD -MP -c -o $@ $<

$(B)/asan/fakeup: $(FAKESRC) $(ALIBOBJ)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) -O1 -g $(SAN) $(WARN) -o $@ $(FAKESRC) $(ALIBOBJ) $(LIBS)

# Unit tests (cmocka): one binary per tests/unit/LAYER/test_*.c, linked with every module but main.
$(B)/unit/%: tests/unit/%.c $(LIBOBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LIBS) -lcmocka

$(B)/asan/unit/%: tests/unit/%.c $(ALIBOBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) -O1 -g $(SAN) $(WARN) -o $@ $< $(ALIBOBJ) $(LIBS) -lcmocka

# Fuzz targets: replayed over their corpus by a plain driver under ASan/UBSan;
# `make fuzz` builds real libFuzzer binaries with clang for longer runs.
$(B)/asan/fuzz/%: tests/fuzz/%.c tests/fuzz/replay.c $(ALIBOBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) -O1 -g $(SAN) $(WARN) -o $@ $< tests/fuzz/replay.c $(ALIBOBJ) $(LIBS)

# The modules are compiled once with -fsanitize=fuzzer-no-link and linked into every target.
FUZZFLAGS := -O1 -g -fsanitize=address,undefined
FOBJ      := $(patsubst src/%.c,$(B)/fuzz/obj/%.o,$(LIBSRC))
FUZZBIN   := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZSRC))

fuzz: deps
	@sh tests/deps.sh $(DEB_FUZZ)
	@$(MAKE) --no-print-directory $(FUZZBIN)
	@echo "run e.g.: $(B)/fuzz/fuzz_sse tests/fuzz/corpus/sse -max_total_time=60 (see tests/fuzz/README.md)"

# kept between runs, though only pattern rules name them
.SECONDARY: $(FOBJ)

$(B)/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CLANG   $@"
	@clang $(STD) $(CPPFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FOBJ)
	@echo "  CLANG   $@"
	@clang $(STD) $(CPPFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< $(FOBJ) $(LIBS)

unit: $(UNITS) $(AUNITS) $(FUZZREP) $(B)/alloccount.so

# The allocation counter the hot-path test preloads into the gateway (tests/tools/alloccount.c).
$(B)/alloccount.so: tests/tools/alloccount.c
	@echo "  CC      $@"
	@$(CC) $(STD) $(CPPFLAGS) -O2 $(WARN) -shared -fPIC -o $@ $<

deps:
	@sh tests/deps.sh $(DEB_BUILD)

deps-test: deps
	@sh tests/deps.sh $(DEB_TEST)
	@command -v node >/dev/null 2>&1 || sh tests/deps.sh $(DEB_NODE)

run: deps
	@$(MAKE) --no-print-directory $(B)/unbusy
	./$(B)/unbusy --demo

test: deps-test
	@$(MAKE) --no-print-directory all asan unit
	@cd tests/integration && npm ci --no-audit --no-fund --loglevel=error
	@sh deploy/build-image.sh
	@sh tests/run.sh

# The container image (deploy/Dockerfile), built and started; SKIP without docker or podman.
image:
	@sh deploy/build-image.sh

bench: all
	@sh bench/run.sh

bench-overload: all
	@BENCH_BUILD=0 bash bench/overload.sh

format:
	clang-format -i src/*.c src/*.h src/*/*.c src/*/*.h tests/unit/*/*.c tests/fakes/*.c tests/fuzz/*.c

clean:
	rm -rf $(B)

-include $(OBJ:.o=.d) $(AOBJ:.o=.d) $(FOBJ:.o=.d)

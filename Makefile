# scgi-lua: `make run` sets up and starts the demo, `make test` runs every suite.
# SANITIZE=1 builds with ASan+UBSan (objects under build/san, so both builds coexist).

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
LUADIR   ?= $(PREFIX)/share/lua/5.1
MANDIR   ?= $(PREFIX)/share/man

CC       ?= cc
PKGS     := libev-dev libluajit-5.1-dev luajit libhttp-parser-dev libssl-dev
TEST_PKGS := lua-busted lua-socket lua-posix uwsgi uwsgi-plugin-python3 python3 luarocks groff-base valgrind curl openssl
LINT_PKGS := clang-format lua-check cppcheck
BENCH_PKGS := wrk nginx lighttpd curl iproute2 valgrind
LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS   := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)

VARIANT  := $(if $(SANITIZE),san,std)
BUILD    := build/$(VARIANT)
# CFLAGS/LDFLAGS from the command line (luarocks passes some) add to ours, never replace them
CFLAGS   ?= -O2 -g
SG_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Werror $(LUAJIT_CFLAGS) \
             -DSG_LUA_DIR='"$(LUADIR)"' -pthread
SG_LDFLAGS := -Wl,-E -pthread
LDLIBS   += -lev -lhttp_parser -lssl -lcrypto $(LUAJIT_LIBS) -lm
ifdef SANITIZE
SG_CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SG_LDFLAGS += -fsanitize=address,undefined
endif
ALL_CFLAGS = $(CFLAGS) $(SG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SG_LDFLAGS)

SRCS := $(wildcard core/*.c)
OBJS := $(SRCS:core/%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/main.o,$(OBJS))

# relink when switching between the plain and the sanitized build
$(shell mkdir -p $(BUILD); [ "$$(cat build/variant 2>/dev/null)" = "$(VARIANT)" ] || echo $(VARIANT) > build/variant)

.PHONY: all run deps deps-test test test-c test-unit test-integration lint format bench install fuzz clean

all: scgi-lua

scgi-lua: $(OBJS) build/variant
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.o: core/%.c $(wildcard core/*.h)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# ---- set-up: install what is missing (as root), or say exactly what to run ----
deps:
	@sh spec/tools/ensure-packages.sh $(PKGS)

deps-test:
	@sh spec/tools/ensure-packages.sh $(PKGS) $(TEST_PKGS)

run: deps
	@$(MAKE) --no-print-directory all
	@sh examples/run-demo.sh

# ---- tests: one summary line "N passed, M failed" over every suite ----
# (build/variant: relinked when switching between the plain and the sanitized build)
spec/c/%.bin: spec/c/%.c $(LIB_OBJS) spec/c/test.h build/variant
	$(CC) $(ALL_CFLAGS) -Icore -o $@ $< $(filter-out $(BUILD)/$(patsubst test_%,%,$*).o,$(LIB_OBJS)) \
	    $(ALL_LDFLAGS) $(LDLIBS)

# the end-to-end fuzz harness without libFuzzer: replays spec/fuzz/corpus/fuzz_conn, one
# process per input, and counts in the summary like the C unit tests
spec/fuzz/fuzz_conn.bin: spec/fuzz/fuzz_conn.c spec/fuzz/fuzz_common.h $(LIB_OBJS) build/variant
	$(CC) $(ALL_CFLAGS) -DSG_FUZZ_REPLAY -Icore -o $@ $< $(LIB_OBJS) $(ALL_LDFLAGS) $(LDLIBS)

C_TESTS := $(patsubst %.c,%.bin,$(wildcard spec/c/test_*.c)) spec/fuzz/fuzz_conn.bin

test: deps-test
	@$(MAKE) --no-print-directory all $(C_TESTS)
	@sh spec/tools/run-tests.sh $(C_TESTS)

test-c: all $(C_TESTS)
	@for t in $(C_TESTS); do ./$$t || exit 1; done

test-unit:
	luajit /usr/bin/busted -o plainTerminal

test-integration: all
	luajit /usr/bin/busted -o plainTerminal --run=integration

# ---- static checks (not part of `make test`): clang-format, luacheck, include cycles, cppcheck;
# one summary line, non-zero exit on any finding. `make format` rewrites the C files.
lint:
	@sh spec/tools/ensure-packages.sh $(PKGS) $(LINT_PKGS)
	@sh spec/tools/lint.sh

format:
	@sh spec/tools/ensure-packages.sh clang-format
	@sh spec/tools/format.sh

bench: all
	@sh spec/tools/ensure-packages.sh $(BENCH_PKGS)
	@sh spec/bench/run.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/scgilua $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(PREFIX)/share/doc/scgi-lua/examples
	install -m 0755 scgi-lua $(DESTDIR)$(BINDIR)/scgi-lua
	install -m 0644 lua/scgilua/*.lua $(DESTDIR)$(LUADIR)/scgilua/
	install -m 0644 core/scgi-lua.8 $(DESTDIR)$(MANDIR)/man8/scgi-lua.8
	install -m 0644 examples/*.lua examples/*.service examples/logrotate.conf README.md \
	    $(DESTDIR)$(PREFIX)/share/doc/scgi-lua/examples/

FUZZ_PKGS := clang libclang-rt-14-dev $(PKGS)

fuzz:
	@sh spec/tools/ensure-packages.sh $(FUZZ_PKGS)
	@sh spec/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

clean:
	rm -rf build scgi-lua spec/c/*.bin spec/fuzz/*.bin

/* Unit tests for core/config_decode.c: a table scgilua.config normalised decodes; the same
 * table with a field the schema always fills taken out (or of another type) fails, the first
 * line of the report naming the field's dotted path; the fields the schema may leave out
 * stay optional. */
#include "../../core/config_decode.c"
#include "test.h"

#include <lualib.h>

/* One config touching every decoded part: tcp and unix listeners, the status endpoint, a
 * balancer whose members are a bare URL and a record with a check, a balancer route and a
 * unix route with env entries. No name lookup: every host is an address literal. */
static const char *const CONFIG =
    "local cfg, errs = require('scgilua.config').validate {\n"
    "  listen = { '127.0.0.1:0', 'unix:/tmp/sg-test-decode.sock' },\n"
    "  status = {},\n"
    "  balancers = { web = { members = { 'scgi://127.0.0.1:4001/',\n"
    "    { url = 'scgi://127.0.0.1:4002/', check = {} } } } },\n"
    "  routes = { { path = '/a/', pass = 'balancer://web/' },\n"
    "    { path = '/', pass = 'scgi+unix:/tmp/sg-test-b.sock', env = { X = '1', Y = false } } },\n"
    "}\n"
    "assert(cfg, errs and table.concat(errs, '\\n'))\n"
    "return cfg\n";

/* Decodes CONFIG after running `edit` (Lua, `cfg` in scope) on it; returns the decode's rc
 * and leaves its report in `report`. */
static int decode_edited(const char *edit, sg_buf *report)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path") == 0,
          "package.path");
    char chunk[4096];
    snprintf(chunk, sizeof chunk, "local cfg = (function() %s end)()\n%s\nreturn cfg", CONFIG,
             edit);
    int rc = SG_ERR;
    if (luaL_dostring(L, chunk) != 0) {
        CHECK(0, "edit \"%s\": %s", edit, lua_tostring(L, -1));
    } else {
        sg_config cfg;
        memset(&cfg, 0, sizeof cfg);
        int top = lua_gettop(L);
        rc = sg_config_decode(L, &cfg, NULL, report);
        CHECK(lua_gettop(L) == top, "edit \"%s\": stack %d, was %d", edit, lua_gettop(L), top);
        sg_config_decode_free(&cfg);
    }
    lua_close(L);
    return rc;
}

static void test_complete(void)
{
    sg_buf report;
    sg_buf_init(&report);
    CHECK_INT(decode_edited("", &report), SG_OK);
    CHECK(report.len == 0, "report: %.*s", (int)report.len, sg_buf_head(&report));
    sg_buf_free(&report);
}

static void test_required(void)
{
    static const struct {
        const char *edit, *line;
    } t[] = {
        { "cfg.routes[2].timeout = nil", "  config decode: routes[2].timeout missing\n" },
        { "cfg.routes[1].pass_auth = 'yes'",
          "  config decode: routes[1].pass_auth: boolean expected, got string\n" },
        { "cfg.routes[1].internal_redirect = nil",
          "  config decode: routes[1].internal_redirect missing\n" },
        { "cfg.routes[2].sendfile = true",
          "  config decode: routes[2].sendfile: string or false expected, got boolean\n" },
        { "cfg.routes[1].allow_encoded_slashes = nil",
          "  config decode: routes[1].allow_encoded_slashes missing\n" },
        { "cfg.routes[1].https_only = nil", "  config decode: routes[1].https_only missing\n" },
        { "cfg.routes[1].pathinfo = nil", "  config decode: routes[1].pathinfo missing\n" },
        { "cfg.routes[2].env = nil", "  config decode: routes[2].env missing\n" },
        { "cfg.routes[2].env[1].name = nil", "  config decode: routes[2].env[1].name missing\n" },
        { "cfg.routes[2].pass.url_path = nil",
          "  config decode: routes[2].pass.url_path missing\n" },
        { "cfg.routes[2].pass.path = nil", "  config decode: routes[2].pass.path missing\n" },
        { "cfg.routes[1].pass.name = nil", "  config decode: routes[1].pass.name missing\n" },
        { "cfg.routes[1].pass = nil", "  config decode: routes[1].pass missing\n" },
        { "cfg.routes[2] = 5", "  config decode: routes[2]: table expected, got number\n" },
        { "cfg.routes = nil", "  config decode: routes missing\n" },
        { "cfg.timeouts.connect = nil", "  config decode: timeouts.connect missing\n" },
        { "cfg.limits = nil", "  config decode: limits missing\n" },
        { "cfg.limits.match_path_bytes = nil",
          "  config decode: limits.match_path_bytes missing\n" },
        { "cfg.workers = nil", "  config decode: workers missing\n" },
        { "cfg.access_log = nil", "  config decode: access_log missing\n" },
        { "cfg.log_level = nil", "  config decode: log_level missing\n" },
        { "cfg.log_level = 'loud'", "  config decode: log_level: unknown level \"loud\"\n" },
        { "cfg.listen[1].port = nil", "  config decode: listen[1].port missing\n" },
        { "cfg.listen[2].path = nil", "  config decode: listen[2].path missing\n" },
        { "cfg.listen = nil", "  config decode: listen missing\n" },
        { "cfg.status.path = nil", "  config decode: status.path missing\n" },
        { "cfg.status.allow = nil", "  config decode: status.allow missing\n" },
        { "cfg.balancers = nil", "  config decode: balancers missing\n" },
        { "cfg.balancers.web.method = nil", "  config decode: balancers.web.method missing\n" },
        { "cfg.balancers.web.method = 'random'",
          "  config decode: balancers.web.method: unknown method \"random\"\n" },
        { "cfg.balancers.web.maxattempts = nil",
          "  config decode: balancers.web.maxattempts missing\n" },
        { "cfg.balancers.web.members[1].loadfactor = nil",
          "  config decode: balancers.web.members[1].loadfactor missing\n" },
        { "cfg.balancers.web.members[1].lbset = nil",
          "  config decode: balancers.web.members[1].lbset missing\n" },
        { "cfg.balancers.web.members[2].retry = nil",
          "  config decode: balancers.web.members[2].retry missing\n" },
        { "cfg.balancers.web.members[2].drain = nil",
          "  config decode: balancers.web.members[2].drain missing\n" },
        { "cfg.balancers.web.members[2].check.interval = nil",
          "  config decode: balancers.web.members[2].check.interval missing\n" },
        { "cfg.balancers.web.members[2].check.timeout = nil",
          "  config decode: balancers.web.members[2].check.timeout missing\n" },
        { "cfg.balancers.web.members[2].check.path = nil",
          "  config decode: balancers.web.members[2].check.path missing\n" },
        { "cfg.balancers.web.members[1].pass.url_path = nil",
          "  config decode: balancers.web.members[1].pass.url_path missing\n" },
        { "cfg.balancers.web.members[1].pass.port = nil",
          "  config decode: balancers.web.members[1].pass.port missing\n" },
        { "cfg.balancers.web.members[1].pass.kind = 'udp'",
          "  config decode: balancers.web.members[1].pass.kind: unknown kind \"udp\"\n" },
    };
    sg_buf report;
    sg_buf_init(&report);
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        CASE_BEGIN();
        sg_buf_reset(&report);
        CHECK(decode_edited(t[i].edit, &report) == SG_ERR, "edit \"%s\" decoded", t[i].edit);
        /* the first line names the field (a missing balancer table leaves its routes'
         * balancers unknown as well) */
        CHECK(report.len >= strlen(t[i].line) &&
                  memcmp(sg_buf_head(&report), t[i].line, strlen(t[i].line)) == 0,
              "edit \"%s\": report \"%.*s\", want \"%s\"", t[i].edit, (int)report.len,
              sg_buf_head(&report), t[i].line);
        CASE_END();
    }
    sg_buf_free(&report);
}

/* nil means none for these: the decode goes through */
static void test_optional(void)
{
    static const char *const edits[] = {
        "cfg.status = nil",
        "cfg.balancers.web.members[2].check = nil",
        "cfg.balancers.web.sticky = nil",
        "cfg.balancers.web.members[1].route = nil",
        "cfg.routes[2].pass.text = nil",
        "cfg.routes[1].path = nil; cfg.routes[1].match = '^/a/'",
        "cfg.routes[1].access = nil; cfg.log_format = nil",
        "cfg.routes[2].sendfile_root = nil",
    };
    sg_buf report;
    sg_buf_init(&report);
    for (size_t i = 0; i < SG_ARRAY_LEN(edits); i++) {
        sg_buf_reset(&report);
        CHECK(decode_edited(edits[i], &report) == SG_OK, "edit \"%s\": %.*s", edits[i],
              (int)report.len, sg_buf_head(&report));
    }
    sg_buf_free(&report);
}

int main(void)
{
    RUN(test_complete);
    RUN(test_required);
    RUN(test_optional);
    return test_report("test_config_decode");
}

/*
 * cgivars.c: the variable set a backend receives for one request (README "What the backend
 * receives", scgi-lua.8 THE SCGI REQUEST): the CGI variables, the request headers as HTTP_*
 * (hop-by-hop and framing headers dropped, Authorization only with pass_auth, names with
 * underscores or other characters dropped so they cannot alias a CGI name, repeats joined),
 * then the route's env entries, whose Lua functions run here. Does not log.
 */
#include "cgivars.h"

#include <string.h>

#include "util.h"

static bool dropped_header(const char *n, size_t len, bool pass_auth)
{
    static const char *names[] = {
        "Proxy", "Content-Length",    "Content-Type", "Connection",       "Keep-Alive",
        "TE",    "Transfer-Encoding", "Upgrade",      "Proxy-Connection", "Trailer",
        "Expect"
    };
    /* Expect is answered here (100 Continue); a backend must not answer it a second time */
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++)
        if (sg_strieq(n, len, names[i]))
            return true;
    if (!pass_auth &&
        (sg_strieq(n, len, "Authorization") || sg_strieq(n, len, "Proxy-Authorization")))
        return true;
    return false;
}

static void add_num(sg_scgi_vars *v, const char *name, size_t name_len, unsigned n)
{
    char s[24];
    sg_scgi_add(v, name, name_len, s, sg_fmt_u64(s, n, 10));
}

#define ADD(v, name, value, len) sg_scgi_add((v), name, sizeof name - 1, (value), (len))
#define ADD_STR(v, name, value) ADD(v, name, (value), strlen(value))

int sg_cgi_vars_build(sg_scgi_vars *v, const sg_cgi_vars_in *in, sg_buf *err)
{
    const sg_request *r = in->req;
    const sg_route *rt = in->route;
    const sg_backend *be = in->be;
    const sg_client *cl = in->client;
    sg_scgi_vars_reset(v);
    /* the fixed set is unique by construction: appended without lookups */
    ADD_STR(v, "REQUEST_METHOD", r->method);
    ADD(v, "REQUEST_URI", r->uri, r->uri_len_view);
    ADD(v, "QUERY_STRING", r->query, r->query_len);
    if (rt->pathinfo) {
        /* SCRIPT_NAME = route prefix without its slash; PATH_INFO = pass path + the rest */
        size_t plen = rt->path ? rt->path_len : 0;
        while (plen > 0 && rt->path[plen - 1] == '/')
            plen--;
        ADD(v, "SCRIPT_NAME", rt->path ? rt->path : "", plen);
        const char *rest = r->path + (plen <= r->path_len ? plen : r->path_len);
        size_t ulen = strlen(be->url_path);
        while (ulen > 0 && be->url_path[ulen - 1] == '/')
            ulen--;
        sg_buf pi;
        sg_buf_init(&pi);
        sg_buf_append(&pi, be->url_path, ulen);
        if (rest[0] != '/')
            sg_buf_append(&pi, "/", 1);
        sg_buf_append_str(&pi, rest);
        ADD(v, "PATH_INFO", sg_buf_head(&pi), pi.len);
        sg_buf_free(&pi);
    } else {
        ADD(v, "SCRIPT_NAME", r->path, r->path_len);
    }
    ADD_STR(v, "SERVER_PROTOCOL", r->http_minor ? "HTTP/1.1" : "HTTP/1.0");
    if (r->host && r->host_len)
        ADD(v, "SERVER_NAME", r->host, r->host_len);
    else
        ADD_STR(v, "SERVER_NAME", cl->server_addr);
    add_num(v, "SERVER_PORT", 11, (unsigned)cl->server_port);
    ADD_STR(v, "SERVER_ADDR", cl->server_addr);
    ADD(v, "SERVER_SOFTWARE", SG_SOFTWARE, sizeof SG_SOFTWARE - 1);
    ADD_STR(v, "REMOTE_ADDR", cl->remote_addr);
    add_num(v, "REMOTE_PORT", 11, (unsigned)cl->remote_port);
    if (cl->tls) {
        /* mod_ssl's StdEnvVars names: what Django, Rails and Fossil look for */
        const sg_tls_info *t = cl->tls;
        ADD(v, "REQUEST_SCHEME", "https", 5);
        ADD(v, "HTTPS", "on", 2);
        ADD_STR(v, "SSL_PROTOCOL", t->protocol);
        ADD_STR(v, "SSL_CIPHER", t->cipher);
        if (t->sni[0])
            ADD_STR(v, "SSL_TLS_SNI", t->sni);
        if (t->client_verify_asked || t->s_dn)
            ADD_STR(v, "SSL_CLIENT_VERIFY", t->verify);
        if (t->s_dn) {
            ADD_STR(v, "SSL_CLIENT_S_DN", t->s_dn);
            ADD_STR(v, "SSL_CLIENT_I_DN", t->i_dn);
            ADD_STR(v, "SSL_CLIENT_M_SERIAL", t->serial);
        }
        if (t->cert_pem)
            ADD_STR(v, "SSL_CLIENT_CERT", t->cert_pem);
    } else {
        ADD(v, "REQUEST_SCHEME", "http", 4);
    }
    ADD(v, "GATEWAY_INTERFACE", "CGI/1.1", 7);
    if (in->orig_uri) {
        /* no REDIRECT_URL: frameworks read it as the current URL and get the prefix wrong */
        ADD(v, "REDIRECT_STATUS", "200", 3);
        ADD(v, "REDIRECT_REQUEST_URI", in->orig_uri, in->orig_uri_len);
    }
    if (r->content_type)
        ADD_STR(v, "CONTENT_TYPE", r->content_type);
    char name[5 + 256 + 1];
    for (size_t i = 0; i < r->nheaders; i++) {
        const sg_req_header *h = &r->headers[i];
        if (h->name_len > 256 || dropped_header(h->name, h->name_len, rt->pass_auth))
            continue;
        size_t nlen = sg_scgi_http_name(h->name, h->name_len, name);
        if (!nlen)
            continue; /* underscores or other characters: never let them alias a CGI name */
        sg_scgi_join(v, name, nlen, h->value, h->value_len,
                     sg_strieq(h->name, h->name_len, "Cookie") ? "; " : ", ");
    }
    sg_buf val, herr;
    sg_buf_init(&val);
    sg_buf_init(&herr);
    int rc = SG_OK;
    for (size_t i = 0; i < rt->nenv; i++) {
        const sg_env_entry *e = &rt->env[i];
        if (e->fn_ref > 0) { /* a Lua function (registry reference) */
            bool present;
            sg_buf_reset(&val);
            if (sg_lua_env(in->hook, e, &val, &present, &herr) != SG_OK) {
                sg_buf_appendf(err, "env.%s hook failed: %.*s", e->name, (int)herr.len,
                               sg_buf_head(&herr));
                rc = SG_ERR;
                break;
            }
            if (present)
                sg_scgi_set(v, e->name, e->name_len, sg_buf_head(&val), val.len);
            else
                sg_scgi_remove(v, e->name, e->name_len);
        } else if (e->value) {
            sg_scgi_set(v, e->name, e->name_len, e->value, e->value_len);
        } else {
            sg_scgi_remove(v, e->name, e->name_len);
        }
    }
    sg_buf_free(&val);
    sg_buf_free(&herr);
    return rc;
}

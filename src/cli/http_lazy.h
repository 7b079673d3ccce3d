/* libcurl, loaded on first use. The client commands that talk HTTP (deploy, invoke, kv, bench
 * ycsb/dnn...) are rare next to `psl run`, whose cold start must stay within a few milliseconds:
 * linking libcurl and its ~25 dependencies (TLS, Kerberos, LDAP...) into psl doubled the dynamic
 * loader's work at every start. Include this after <curl/curl.h>: the curl calls used by psl are
 * routed to wrappers that dlopen libcurl.so.4 the first time one is made (and abort with a clear
 * message if it is missing, which deps.sh prevents). */
#ifndef PSL_CLI_HTTP_LAZY_H
#define PSL_CLI_HTTP_LAZY_H

#include <curl/curl.h>

CURLcode psl_curl_global_init(long flags);
void psl_curl_global_cleanup(void);
CURL *psl_curl_easy_init(void);
CURLcode psl_curl_easy_setopt(CURL *h, CURLoption opt, ...);
CURLcode psl_curl_easy_perform(CURL *h);
CURLcode psl_curl_easy_getinfo(CURL *h, CURLINFO info, ...);
void psl_curl_easy_cleanup(CURL *h);
const char *psl_curl_easy_strerror(CURLcode c);
struct curl_slist *psl_curl_slist_append(struct curl_slist *l, const char *s);
void psl_curl_slist_free_all(struct curl_slist *l);
char *psl_curl_easy_escape(CURL *h, const char *s, int len);
void psl_curl_free(void *p);

/* curl.h defines curl_easy_setopt/getinfo as type-checking macros under GCC: replace them. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init psl_curl_global_init
#define curl_global_cleanup psl_curl_global_cleanup
#define curl_easy_init psl_curl_easy_init
#define curl_easy_setopt psl_curl_easy_setopt
#define curl_easy_perform psl_curl_easy_perform
#define curl_easy_getinfo psl_curl_easy_getinfo
#define curl_easy_cleanup psl_curl_easy_cleanup
#define curl_easy_strerror psl_curl_easy_strerror
#define curl_slist_append psl_curl_slist_append
#define curl_slist_free_all psl_curl_slist_free_all
#define curl_easy_escape psl_curl_easy_escape
#define curl_free psl_curl_free

#endif

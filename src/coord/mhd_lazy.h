/* libmicrohttpd, loaded when the gateway starts. Only `psl coordinator` serves HTTP, but linking
 * libmicrohttpd into psl brought GnuTLS and its dependencies, whose library constructors run at
 * every start of every psl command (`psl run` included: its cold start must stay within a few
 * milliseconds). Include this after <microhttpd.h>: the MHD calls of the gateway go to wrappers
 * that dlopen libmicrohttpd.so.12 on first use. */
#ifndef PSL_COORD_MHD_LAZY_H
#define PSL_COORD_MHD_LAZY_H

#include <microhttpd.h>

struct MHD_Daemon *psl_MHD_start_daemon(unsigned int flags, uint16_t port,
                                        MHD_AcceptPolicyCallback apc, void *apc_cls,
                                        MHD_AccessHandlerCallback dh, void *dh_cls, ...);
void psl_MHD_stop_daemon(struct MHD_Daemon *d);
enum MHD_Result psl_MHD_add_response_header(struct MHD_Response *r, const char *h,
                                            const char *v);
struct MHD_Response *psl_MHD_create_response_from_buffer(size_t size, void *buffer,
                                                         enum MHD_ResponseMemoryMode mode);
void psl_MHD_destroy_response(struct MHD_Response *r);
const char *psl_MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                            const char *key);
enum MHD_Result psl_MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                       struct MHD_Response *r);

#define MHD_start_daemon psl_MHD_start_daemon
#define MHD_stop_daemon psl_MHD_stop_daemon
#define MHD_add_response_header psl_MHD_add_response_header
#define MHD_create_response_from_buffer psl_MHD_create_response_from_buffer
#define MHD_destroy_response psl_MHD_destroy_response
#define MHD_lookup_connection_value psl_MHD_lookup_connection_value
#define MHD_queue_response psl_MHD_queue_response

#endif

/*
 * health.h: active health checks (README "Balancers", scgi-lua.8 "Balancers"; beyond Apache,
 * which only opens a TCP connection for SCGI): every member with `check` gets a real SCGI GET of check.path every interval;
 * a 2xx/3xx answer marks it healthy, anything else (or no answer within check.timeout)
 * marks it out until a check passes. One set of probes per config generation; freeing it
 * stops them, so removed members are no longer checked after a reload.
 */
#ifndef SG_HEALTH_H
#define SG_HEALTH_H

#include <ev.h>

#include "config.h"

typedef struct sg_health sg_health;

/** Starts the probes of `cfg` (takes a reference). Returns NULL when nothing is checked. */
sg_health *sg_health_new(struct ev_loop *loop, sg_config *cfg);
/** Stops every probe (closing any connection in flight) and drops the reference. NULL ok. */
void sg_health_free(sg_health *h);

#endif

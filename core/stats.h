/*
 * stats.h: process-wide request counters for the status endpoint (scgi-lua(8) "STATUS ENDPOINT"):
 * requests by status class and a latency histogram. Owned by the server; recording is a few adds.
 */
#ifndef SG_STATS_H
#define SG_STATS_H

#include <stdint.h>

#define SG_STATS_BUCKETS 12
/** Upper bounds (seconds) of the latency buckets; the last bucket also takes everything above. */
extern const double sg_stats_bounds[SG_STATS_BUCKETS];

typedef struct sg_stats {
    double started; /* wall clock (epoch seconds) at start */
    uint64_t reloads_ok, reloads_failed;
    uint64_t connections_total;
    uint64_t requests_total;
    uint64_t by_class[6];               /* [1]..[5]: 1xx..5xx */
    uint64_t latency[SG_STATS_BUCKETS]; /* per bucket (not cumulative) */
    uint64_t latency_over;              /* above the last bound */
    double latency_sum;
} sg_stats;

static inline void sg_stats_record(sg_stats *s, int status, double seconds)
{
    s->requests_total++;
    if (status >= 100 && status < 600)
        s->by_class[status / 100]++;
    s->latency_sum += seconds;
    for (int i = 0; i < SG_STATS_BUCKETS; i++)
        if (seconds <= sg_stats_bounds[i]) {
            s->latency[i]++;
            return;
        }
    s->latency_over++;
}

#endif

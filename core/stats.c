/*
 * stats.c: the latency bucket bounds (seconds), shared by the recorder and the renderer.
 */
#include "stats.h"

const double sg_stats_bounds[SG_STATS_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,   0.25,   0.5,   1,    2.5,   10 };

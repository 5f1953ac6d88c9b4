// Histogram bounds shared by the queue scripts (common/queue/lua/lib.lua keeps the same lists:
// change both together) and the exporter that turns their Redis hashes into histograms.
#pragma once

#include <vector>

namespace scenefarm::metrics {

// Render duration and enqueue-to-ack, seconds (120 and 140: the seeds' average and P95 alerts).
inline const std::vector<double> kDurationBuckets = {
    1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 140, 180, 240, 300, 600, 1200, 1800, 3600};
// Queue wait and done-marker wait, seconds.
inline const std::vector<double> kWaitBuckets = {0.1, 0.5, 1,   2,   5,    10,   30,
                                                 60,  120, 300, 600, 1800, 3600, 7200};
// Frames per scene (21 and 22: the seeds' "frame count < 22" floor; 23 and 24: the weekly
// report's "Min < 24 (was >= 25)").
inline const std::vector<double> kFrameBuckets = {0,  1,  5,  10, 16, 21,  22,  23,
                                                  24, 30, 48, 60, 96, 120, 240, 480};

}  // namespace scenefarm::metrics

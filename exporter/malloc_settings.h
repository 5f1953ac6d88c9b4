// The exporter's glibc malloc settings (issue #14 P5 and P8). glibc gives every thread that
// allocates an arena of its own, up to 8 per core: the exporter's dozen threads (collectors,
// civetweb) each kept a scrape's worth of freed memory in theirs, most of its peak RSS at
// 10,000 workers (22.5 MiB, 15.8 with one arena). One arena alone made scrapes slower (p50 68 ms
// against 49 on a loaded 2-core machine): each scrape's memory went back to the kernel at the
// end of it (the trim and mmap thresholds) and was faulted in again by the next. With the
// thresholds above a scrape's size, freed memory stays for the next scrape and the peak is
// unchanged. Scrapes are one at a time (CollectorSet), but a scrape's collector threads and
// civetweb's 4 request threads (the JSON API and /ui/ beside /metrics) take the one arena's lock
// in turn; measured with 4 scrapers at once it still came out ahead (bench/README.md, P5/P8).
#pragma once

#include <string>
#include <vector>

namespace scenefarm::exporter {

struct MallocSetting {
  int param;            // mallopt's M_*
  const char* env;      // the variable glibc reads for it
  const char* tunable;  // its name in GLIBC_TUNABLES
  int value;            // the exporter's default
};

// M_ARENA_MAX 1, M_TRIM_THRESHOLD 64 MiB, M_MMAP_THRESHOLD 32 MiB (glibc's most).
const std::vector<MallocSetting>& DefaultMallocSettings();

// Whether the operator chose `s` themselves, through its variable (any value, even one glibc
// rejects) or GLIBC_TUNABLES: glibc has applied it already and the exporter leaves it alone.
// The arguments are those variables' values, null when unset.
bool OperatorSetsMalloc(const MallocSetting& s, const char* env_value, const char* glibc_tunables);

// Applies every default the operator did not set. Call first thing in main(), before any thread
// starts. Returns what it did, for the start log: "arena_max=1 trim_threshold=... " with
// "arena_max=environment" for one left to the operator.
std::string ConfigureMalloc();

}  // namespace scenefarm::exporter

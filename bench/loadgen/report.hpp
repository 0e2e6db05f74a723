#pragma once
// The figures of a run, as text for people or one JSON object for scripts (bench/run.sh).
#include <cstdint>
#include <optional>
#include <ostream>
#include <vector>

#include "event_plan.hpp"
#include "load_run.hpp"
#include "options.hpp"
#include "signed_requests.hpp"
#include "verify_db.hpp"

namespace loadgen {

struct latency_summary {
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0, mean_ms = 0;
};

// Nearest-rank percentiles; sorts `ns` in place. All zero for no samples.
latency_summary summarize(std::vector<std::int64_t>& ns);

struct run_report {
  const options& opts;
  const event_plan& plan;
  const signed_batch& batch;
  load_result& load;
  std::optional<verify_report> verified;
};

void print_text(std::ostream& out, run_report& r);
void print_json(std::ostream& out, run_report& r);

}  // namespace loadgen

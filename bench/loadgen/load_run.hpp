#pragma once
// The timed phase: keep-alive connections, each on one io_context thread, each with one
// request in flight, sending its share of the pre-signed events. Connections are made (and
// TLS handshakes done) before the clock starts.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "event_plan.hpp"
#include "options.hpp"
#include "signed_requests.hpp"

namespace loadgen {

// What became of one event.
enum class result : std::uint8_t {
  unsent,     // the run ended first
  applied,    // 2xx {"outcome":"applied"}
  duplicate,  // 2xx duplicate
  stale,      // 2xx stale
  ignored,    // 2xx ignored
  other_2xx,  // 2xx with another body
  non_2xx,    // answered, but not 2xx: not acknowledged
  failed      // no answer (I/O error or timeout): not acknowledged
};
inline constexpr std::size_t result_kinds = 8;
bool acknowledged(result r);  // a 2xx: the sender may forget the event
// The result of an answer, from its status and body.
result classify(unsigned status, const std::string& body);

// Counts from one connection, or merged from all.
struct tally {
  std::uint64_t sent = 0;
  std::array<std::uint64_t, result_kinds> by_result{};
  std::map<unsigned, std::uint64_t> by_status;  // status codes of non-2xx answers
  std::uint64_t timeouts = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t resigned = 0;                   // signatures renewed while sending
  std::vector<std::int64_t> latency_ns;         // one per answered request
  void merge(tally&& other);
  std::uint64_t count(result r) const { return by_result[static_cast<std::size_t>(r)]; }
};

struct load_result {
  tally totals;
  std::vector<result> results;   // by event index
  double seconds = 0;            // first send to last answer
  double connect_seconds = 0;    // making the connections, before the clock
  unsigned connected = 0;        // connections that were ready when the clock started
  double cpu_seconds = 0;        // the generator's own CPU time (user + system) while timed
  double machine_cpu_seconds = 0;  // every process on the machine while timed (/proc/stat)
};

// Runs the timed phase. Throws std::runtime_error when no connection can be made.
load_result run_load(const options& opts, const event_plan& plan, const request_builder& builder,
                     signed_batch& batch);

}  // namespace loadgen

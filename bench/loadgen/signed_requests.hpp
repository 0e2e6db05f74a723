#pragma once
// Turns planned events into complete HTTP/1.1 requests, signed the Svix way, ready to write to
// a socket as they are. Building and signing happen before the clock starts, so the figures
// measure the server, not the generator's JSON and HMAC work.
#include <cstdint>
#include <string>
#include <vector>

#include "event_plan.hpp"
#include "svix_verify.hpp"
#include "target.hpp"

namespace loadgen {

// Signatures older than this are renewed before sending; Svix receivers accept 300 s.
inline constexpr std::int64_t resign_after_s = 240;

class request_builder {
 public:
  request_builder(const target_url& url, const usersync::webhook_secret& secret, std::string run_id);

  // One request: POST url.path with svix-id, svix-timestamp = `timestamp` (Unix seconds) and
  // svix-signature over the body; keep-alive. Thread-safe (const, no shared state).
  std::string build(const planned_event& e, std::uint64_t index, std::int64_t timestamp) const;

  const std::string& run_id() const { return run_id_; }

 private:
  std::string path_;
  std::string host_;
  usersync::webhook_secret secret_;
  std::string run_id_;
};

struct signed_batch {
  std::vector<std::string> requests;      // by event index
  std::vector<std::int64_t> signed_at;    // svix-timestamp of each, for renewal
  std::uint64_t body_bytes = 0;           // over all bodies
  double seconds = 0;                     // wall time spent building and signing
};

// Builds every event of the plan with the current time, on `threads` threads.
signed_batch sign_all(const request_builder& builder, const event_plan& plan, unsigned threads);

// Unix seconds now.
std::int64_t unix_now();

}  // namespace loadgen

#pragma once
// The load generator's settings: parsed and validated once in main, passed down by const&.
// Only this module reads argv and the secret file.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "target.hpp"

namespace loadgen {

struct options {
  target_url url;                          // validated: http or https, loopback only
  std::string secret;                      // whsec_...; from --secret or --secret-file
  unsigned connections = 16;               // keep-alive, one request in flight each
  unsigned threads = 1;                    // io_context threads; connections spread over them
  std::uint64_t events = 100000;           // upper bound: all are signed before the clock
  double duration_s = 0;                   // upper bound on the timed phase; 0: none
  double rate = 0;                         // events/s over all connections; 0: closed loop
  std::uint64_t users = 10000;             // distinct users the events are spread over
  double delete_fraction = 0.1;            // users whose last event is user.deleted
  std::uint32_t window = 1024;             // users whose lifecycles run at the same time
  std::string run_id;                      // in every clerk_id and svix-id; unique per run
  bool insecure = false;                   // TLS without certificate verification
  std::filesystem::path cafile;            // else verify against this CA (or the system's)
  double timeout_s = 10;                   // per request
  std::filesystem::path verify_db;         // check acknowledged effects here afterwards
  std::string label;                       // printed with the figures
  bool json = false;
  bool help = false;
  std::string help_text;
};

// A problem with the command line; the message names the option and the fix.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses and validates `args` (without the program name). Resolves the target and refuses
// any address outside 127.0.0.0/8 and ::1. Throws usage_error.
options parse_options(const std::vector<std::string>& args);

}  // namespace loadgen

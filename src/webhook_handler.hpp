#pragma once
// POST /webhooks/clerk: verify -> decode -> writer, and the one table that maps each
// outcome to an HTTP status. Runs on HTTP threads; the response is sent from the writer's
// completion, after the commit.
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "router.hpp"
#include "svix_verify.hpp"
#include "swappable.hpp"

namespace usersync {

class metrics;
class writer;
struct write_result;

using clock_fn = std::function<std::chrono::system_clock::time_point()>;

class webhook_handler {
 public:
  using secret_list = std::vector<webhook_secret>;

  // `secrets` is read per request, so a SIGHUP that replaces it applies to the next one.
  webhook_handler(writer& w, metrics& stats, const swappable<const secret_list>& secrets,
                  std::chrono::seconds tolerance, clock_fn now = std::chrono::system_clock::now);

  void operator()(const request& req, const path_params&, responder respond) const;

 private:
  writer& writer_;
  metrics& stats_;
  const swappable<const secret_list>& secrets_;
  std::chrono::seconds tolerance_;
  clock_fn now_;
};

// The status table: an outcome or a storage failure to a response.
reply reply_for(const write_result& result);

}  // namespace usersync

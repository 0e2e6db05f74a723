// argv -> options -> plan -> signed requests -> timed run -> optional check -> figures.
// Composition only. Exit codes: 0 done, 1 failed (or --verify-db found a missing effect),
// 2 usage error.
#include <algorithm>
#include <iostream>
#include <thread>

#include "event_plan.hpp"
#include "load_run.hpp"
#include "options.hpp"
#include "report.hpp"
#include "signed_requests.hpp"
#include "verify_db.hpp"

namespace {

int run(const loadgen::options& opts) {
  using namespace loadgen;
  const event_plan plan = make_plan({opts.events, opts.users, opts.delete_fraction, opts.window, opts.connections});
  const request_builder builder(opts.url, usersync::webhook_secret::parse(opts.secret), opts.run_id);
  // Signing happens before the clock starts, so it may use every core.
  signed_batch batch = sign_all(builder, plan, std::max(2u, std::thread::hardware_concurrency()));
  load_result load = run_load(opts, plan, builder, batch);
  run_report report{opts, plan, batch, load, std::nullopt};
  if (!opts.verify_db.empty()) report.verified = verify_database(opts.verify_db, opts.run_id, plan, load.results);
  if (opts.json) {
    print_json(std::cout, report);
  } else {
    print_text(std::cout, report);
  }
  return report.verified && !report.verified->ok() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto opts = loadgen::parse_options(std::vector<std::string>(argv + 1, argv + argc));
    if (opts.help) {
      std::cout << opts.help_text;
      return 0;
    }
    return run(opts);
  } catch (const loadgen::usage_error& e) {
    std::cerr << "usersync-loadgen: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "usersync-loadgen: " << e.what() << "\n";
    return 1;
  }
}

#pragma once
// `usersync serve`: owns the data-dir lock, the store, the writer, the credentials, the
// routers, the listeners and the io_context threads, and shuts them down in reverse: stop
// accepting, drain requests with a deadline, let the writer commit, checkpoint.
#include <functional>

#include "config.hpp"

namespace usersync {

// Runs until SIGINT or SIGTERM; returns the process exit code. `reload` re-reads the
// configuration on SIGHUP. Throws for start-up failures (lock held, bad TLS files, port
// taken, newer schema) with a message an operator can act on.
int run_server(const config& cfg, std::function<config()> reload);

}  // namespace usersync

#pragma once
// GET /metrics (Prometheus text format) and GET /readyz, served on the admin listener, and
// the gauges computed at scrape time.
#include <filesystem>

#include "router.hpp"

namespace usersync {

class metrics;
class reader_pool;
class writer;

// Everything referenced must outlive the router.
void add_admin_routes(router& routes, metrics& stats, writer& w, reader_pool& readers,
                      const std::filesystem::path& db_file);

// Queue depth, commits, database and WAL size, users, memory: read when scraped.
void register_gauges(metrics& stats, writer& w, reader_pool& readers,
                     const std::filesystem::path& db_file);

}  // namespace usersync

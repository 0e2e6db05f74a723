#include "admin_routes.hpp"

#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <limits>

#include "disk_space.hpp"
#include "metrics.hpp"
#include "migrations.hpp"
#include "store.hpp"
#include "store_reader.hpp"
#include "writer.hpp"

namespace usersync {
namespace {

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

reply not_ready(const std::string& reason) {
  reply r = json_error(http::status::service_unavailable, "not_ready", reason);
  r.res.set(http::field::retry_after, "5");
  return r;
}

// 200 once the schema is this binary's, there is room for deliveries and a real write
// commits; 503 with the reason.
void readyz(writer& w, reader_pool& readers, const std::filesystem::path& db_file,
            const responder& respond) {
  int version = 0;
  try {
    version = readers.acquire()->schema_version();
  } catch (const storage_error& e) {
    respond(not_ready(std::string("database not readable: ") + e.what()));
    return;
  }
  if (version != latest_schema_version()) {
    respond(not_ready("database at schema version " + std::to_string(version) + ", expected " +
                      std::to_string(latest_schema_version())));
    return;
  }
  if (const auto shortage = storage_shortage(db_file)) {
    respond(not_ready("database not writable: " + *shortage));
    return;
  }
  w.probe([respond](write_result r) {
    if (r.failure) {
      respond(not_ready("database not writable: " + r.error));
      return;
    }
    respond(json_reply(http::status::ok, R"({"status":"ready"})"));
  });
}

}  // namespace

void add_admin_routes(router& routes, metrics& stats, writer& w, reader_pool& readers,
                      const std::filesystem::path& db_file) {
  routes.add(http::verb::get, "/metrics", [&stats](const request&, const path_params&, const responder& respond) {
    reply r;
    r.res.result(http::status::ok);
    r.res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    r.res.body() = stats.render();
    respond(std::move(r));
  });
  routes.add(http::verb::get, "/readyz", [&w, &readers, db_file](const request&, const path_params&,
                                                                  const responder& respond) {
    readyz(w, readers, db_file, respond);
  });
}

void register_gauges(metrics& stats, writer& w, reader_pool& readers, const std::filesystem::path& db_file) {
  const auto wal = std::filesystem::path(db_file.string() + "-wal");
  const double started = std::chrono::duration<double>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  stats.add_gauge("usersync_writer_queue_depth", "Deliveries waiting for the writer",
                  [&w] { return static_cast<double>(w.queue_depth()); });
  stats.add_counter("usersync_writer_commits_total", "Write transactions committed",
                    [&w] { return static_cast<double>(w.commits()); });
  stats.add_counter("usersync_writer_deliveries_committed_total",
                    "Deliveries committed; divided by commits, the events per commit",
                    [&w] { return static_cast<double>(w.committed_deliveries()); });
  stats.add_gauge("usersync_database_size_bytes", "Size of the database file",
                  [db_file] { return static_cast<double>(file_size_or_zero(db_file)); });
  stats.add_gauge("usersync_wal_size_bytes", "Size of the write-ahead log",
                  [wal] { return static_cast<double>(file_size_or_zero(wal)); });
  stats.add_gauge("usersync_storage_available_bytes",
                  "Room left for the database to grow (NaN when unknown); /readyz fails under 1 MiB",
                  [db_file] {
                    const auto room = storage_room(db_file);
                    return room ? static_cast<double>(*room) : std::numeric_limits<double>::quiet_NaN();
                  });
  stats.add_gauge("usersync_users", "Users in the mirror (NaN when the database is unreadable)", [&readers] {
    try {
      return static_cast<double>(readers.acquire()->user_count());
    } catch (const storage_error&) {
      return std::numeric_limits<double>::quiet_NaN();
    }
  });
  stats.add_gauge("process_resident_memory_bytes", "Resident memory", [] { return resident_bytes(); });
  stats.add_gauge("process_start_time_seconds", "Start time since the Unix epoch",
                  [started] { return started; });
}

}  // namespace usersync

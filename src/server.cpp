#include "server.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <thread>
#include <vector>

#include "admin_routes.hpp"
#include "backup.hpp"
#include "backup_scheduler.hpp"
#include "bearer_auth.hpp"
#include "credentials.hpp"
#include "data_dir.hpp"
#include "http_session.hpp"
#include "listener.hpp"
#include "metrics.hpp"
#include "query_api.hpp"
#include "router.hpp"
#include "store.hpp"
#include "store_reader.hpp"
#include "swappable.hpp"
#include "version.hpp"
#include "webhook_handler.hpp"
#include "writer.hpp"

namespace usersync {
namespace {

namespace ssl = boost::asio::ssl;
using secret_list = webhook_handler::secret_list;

const std::filesystem::path& prepared(const std::filesystem::path& dir) {
  prepare_data_dir(dir);
  return dir;
}

// The database path, after PRAGMA quick_check: a damaged file stops the start with the
// newest verified backups and the restore command, before anything is modified.
std::filesystem::path checked_database(const config& cfg) {
  const auto file = database_path(cfg.storage.data_dir);
  check_database_or_explain(file, cfg.backup.dir);
  return file;
}

backup_schedule backup_settings(const config& cfg) {
  backup_schedule s;
  s.interval = cfg.backup.interval;
  s.retention = {cfg.backup.keep_last, cfg.backup.keep_daily_days};
  return s;
}

// The last backup's time, size and result, read from the job at scrape time.
void register_backup_gauges(metrics& stats, const backup_scheduler& backups) {
  auto seconds = [](const std::optional<sys_time>& t) {
    return t ? std::chrono::duration<double>(t->time_since_epoch()).count() : 0.0;
  };
  stats.add_gauge("usersync_last_backup_timestamp_seconds", "When the last backup started (0: none yet)",
                  [&backups, seconds] { return seconds(backups.last_backup_status().last_attempt); });
  stats.add_gauge("usersync_last_backup_success", "1 when the last backup was verified and kept",
                  [&backups] { return backups.last_backup_status().last_ok ? 1.0 : 0.0; });
  stats.add_gauge("usersync_last_backup_size_bytes", "Size of the last kept backup",
                  [&backups] { return static_cast<double>(backups.last_backup_status().last_size_bytes); });
  stats.add_counter("usersync_backups_failed_total", "Backups that failed (nothing was kept)",
                    [&backups] { return static_cast<double>(backups.last_backup_status().failed); });
}

writer_options writer_settings(const config& cfg, metrics& stats) {
  writer_options o;
  o.queue_limit = cfg.storage.writer_queue_limit;
  o.max_batch = cfg.storage.writer_max_batch;
  o.batch_wait = cfg.storage.writer_batch_wait;
  o.delivery_retention = cfg.webhook.delivery_retention;
  o.commit_latency = &stats.commit_latency;
  return o;
}

std::string url(const char* scheme, const tcp::endpoint& e) {
  const std::string host = e.address().is_v6() ? "[" + e.address().to_string() + "]" : e.address().to_string();
  return std::string(scheme) + "://" + host + ":" + std::to_string(e.port());
}

// The parts that live while requests are served. Members are destroyed in reverse order, so
// everything the sessions use outlives the io_context that owns them (a local of run()).
class service {
 public:
  service(const config& cfg, std::function<config()> reload)
      : cfg_(cfg),
        reload_(std::move(reload)),
        lock_(prepared(cfg.storage.data_dir)),
        store_(checked_database(cfg), store_options{cfg.storage.busy_timeout}),
        registry_(cfg.limits.max_connections),
        admin_registry_(64) {}

  int run();

 private:
  void migrate();
  void load_credentials();
  void add_routes(writer& w);
  void start_listeners(net::io_context& ioc);
  void on_signals(net::io_context& ioc);
  void final_checkpoint();
  void wait_for_reload();
  void reload();
  void shut_down(net::io_context& ioc);
  void drain(net::io_context& ioc, std::chrono::steady_clock::time_point deadline);

  const config& cfg_;
  std::function<config()> reload_;
  data_dir_lock lock_;
  store store_;
  metrics stats_;
  connection_registry registry_;
  connection_registry admin_registry_;
  std::unique_ptr<swappable<const secret_list>> secrets_;
  std::unique_ptr<swappable<const bearer_auth>> auth_;
  std::unique_ptr<swappable<ssl::context>> tls_;  // null with --plain-http
  std::unique_ptr<reader_pool> readers_;
  router router_;
  router admin_router_;
  std::vector<std::shared_ptr<listener>> listeners_;
  std::unique_ptr<net::signal_set> stop_signals_;
  std::unique_ptr<net::signal_set> reload_signal_;
};

void service::migrate() {
  const migration_report report = store_.migrate();
  if (report.applied.empty()) {
    spdlog::info("database {} is at schema version {}", store_.file().string(), report.to_version);
  } else {
    spdlog::info("database {} migrated from schema version {} to {}", store_.file().string(),
                 report.from_version, report.to_version);
  }
}

void service::load_credentials() {
  secrets_ = std::make_unique<swappable<const secret_list>>(
      std::make_shared<const secret_list>(load_webhook_secrets(cfg_)));
  auth_ = std::make_unique<swappable<const bearer_auth>>(load_query_auth(cfg_));
  if (auto context = load_tls(cfg_)) tls_ = std::make_unique<swappable<ssl::context>>(std::move(context));
}

void service::add_routes(writer& w) {
  // One reader per HTTP thread: a query never waits for a connection, nor for the writer.
  readers_ = std::make_unique<reader_pool>(store_.file(), cfg_.runtime.threads + 1,
                                           static_cast<int>(cfg_.storage.busy_timeout.count()));
  const handler healthz = [](const request&, const path_params&, const responder& respond) {
    respond(json_reply(http::status::ok, R"({"status":"ok"})"));
  };
  router_.add(http::verb::get, "/healthz", healthz);
  router_.add(http::verb::post, "/webhooks/clerk", webhook_handler(w, stats_, *secrets_, cfg_.webhook.tolerance));
  add_query_routes(router_, *auth_, *readers_);
  router& admin = cfg_.listen.admin_enabled ? admin_router_ : router_;
  if (cfg_.listen.admin_enabled) admin.add(http::verb::get, "/healthz", healthz);
  add_admin_routes(admin, stats_, w, *readers_, store_.file());
  register_gauges(stats_, w, *readers_, store_.file());
}

void service::start_listeners(net::io_context& ioc) {
  const tcp::endpoint main_endpoint(net::ip::make_address(cfg_.listen.address), cfg_.listen.port);
  listeners_.push_back(std::make_shared<listener>(ioc, main_endpoint, tls_.get(),
                                                  session_settings{router_, cfg_.limits, registry_, stats_}));
  spdlog::info("usersync {} listening on {}/webhooks/clerk with {} threads", version,
               url(tls_ ? "https" : "http", listeners_.back()->local_endpoint()), cfg_.runtime.threads);
  if (cfg_.listen.admin_enabled) {
    const tcp::endpoint admin(net::ip::make_address(cfg_.listen.admin_address), cfg_.listen.admin_port);
    listeners_.push_back(std::make_shared<listener>(
        ioc, admin, nullptr, session_settings{admin_router_, cfg_.limits, admin_registry_, stats_}));
    spdlog::info("admin endpoints on {} (/metrics, /readyz, /healthz)",
                 url("http", listeners_.back()->local_endpoint()));
  }
  for (auto& l : listeners_) l->run();
}

int service::run() {
  migrate();
  load_credentials();
  writer w(store_, writer_settings(cfg_, stats_));
  add_routes(w);
  backup_scheduler backups(backup_options{store_.file(), cfg_.backup.dir, "", cfg_.storage.busy_timeout},
                           backup_settings(cfg_));
  register_backup_gauges(stats_, backups);
  {
    net::io_context ioc(static_cast<int>(cfg_.runtime.threads));
    start_listeners(ioc);
    on_signals(ioc);
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < cfg_.runtime.threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : threads) t.join();
    // Commits everything already queued; completions post to the stopped io_context, whose
    // destruction at the end of this block then releases the sessions they hold.
    w.stop();
    stop_signals_.reset();
    reload_signal_.reset();
    listeners_.clear();
  }
  backups.stop();  // interrupts a backup in progress; it leaves nothing behind
  final_checkpoint();
  spdlog::info("usersync stopped cleanly");
  return 0;
}

// Folds the WAL into the database so the file stands alone (for a copy or the sqlite3 shell).
// Every committed event is already durable in the WAL, which the next start replays, so a
// failure here (a full disk) is worth a warning but does not make the stop unclean.
void service::final_checkpoint() {
  try {
    store_.checkpoint();
  } catch (const storage_error& e) {
    spdlog::warn("final checkpoint failed, the WAL keeps every committed event until the next "
                 "start: {}", e.what());
  }
}

void service::on_signals(net::io_context& ioc) {
  stop_signals_ = std::make_unique<net::signal_set>(ioc, SIGINT, SIGTERM);
  stop_signals_->async_wait([this, &ioc](error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: no longer accepting; finishing in-flight requests (up to {}s)", signo,
                 cfg_.runtime.shutdown_timeout.count());
    shut_down(ioc);
  });
  reload_signal_ = std::make_unique<net::signal_set>(ioc, SIGHUP);
  wait_for_reload();
}

void service::wait_for_reload() {
  reload_signal_->async_wait([this](error_code ec, int) {
    if (ec) return;
    reload();
    wait_for_reload();
  });
}

// Re-reads the configuration and replaces, one by one, the credentials that loaded; a part
// that fails keeps its old value, so a bad new file never takes the service down.
void service::reload() {
  spdlog::info("SIGHUP: reloading the TLS certificate, webhook secrets and query tokens");
  config next;
  try {
    next = reload_();
  } catch (const std::exception& e) {
    spdlog::error("reload failed, keeping the current settings: {}", e.what());
    return;
  }
  try {
    secrets_->set(std::make_shared<const secret_list>(load_webhook_secrets(next)));
    spdlog::info("webhook secrets reloaded");
  } catch (const std::exception& e) {
    spdlog::error("webhook secrets not reloaded, keeping the current ones: {}", e.what());
  }
  try {
    auth_->set(load_query_auth(next));
    spdlog::info("query tokens reloaded");
  } catch (const std::exception& e) {
    spdlog::error("query tokens not reloaded, keeping the current ones: {}", e.what());
  }
  if (!tls_) return;
  try {
    tls_->set(load_tls(next));
    spdlog::info("TLS certificate reloaded; new connections use it");
  } catch (const std::exception& e) {
    spdlog::error("TLS certificate not reloaded, keeping the current one: {}", e.what());
  }
}

void service::shut_down(net::io_context& ioc) {
  for (auto& l : listeners_) l->stop();
  registry_.drain_all();
  admin_registry_.drain_all();
  // A second signal stops at once.
  stop_signals_->async_wait([&ioc](error_code e, int) {
    if (!e) ioc.stop();
  });
  drain(ioc, std::chrono::steady_clock::now() + cfg_.runtime.shutdown_timeout);
}

void service::drain(net::io_context& ioc, std::chrono::steady_clock::time_point deadline) {
  const std::size_t open = registry_.active() + admin_registry_.active();
  if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (open > 0) spdlog::warn("shutdown deadline reached with {} connections open; closing them", open);
    ioc.stop();
    return;
  }
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(20));
  timer->async_wait([this, timer, &ioc, deadline](error_code) { drain(ioc, deadline); });
}

}  // namespace

int run_server(const config& cfg, std::function<config()> reload) {
  service s(cfg, std::move(reload));
  return s.run();
}

}  // namespace usersync

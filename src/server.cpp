#include "server.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <thread>
#include <vector>

#include "data_dir.hpp"
#include "bearer_auth.hpp"
#include "http_session.hpp"
#include "listener.hpp"
#include "query_api.hpp"
#include "router.hpp"
#include "store.hpp"
#include "store_reader.hpp"
#include "tls.hpp"
#include "version.hpp"
#include "webhook_handler.hpp"
#include "writer.hpp"

namespace usersync {
namespace {

std::vector<webhook_secret> load_secrets(const config& cfg) {
  std::vector<std::string> texts = cfg.webhook.secrets;
  if (texts.empty()) {
    const dev_credential dev = load_or_create_dev_secret(cfg.storage.data_dir);
    spdlog::warn("no webhook secret configured: using the dev secret in {} ({}); for production "
                 "set --webhook-secret-file to the provider's signing secret",
                 dev.file.string(), dev.created ? "created now" : "made on an earlier run");
    texts.push_back(dev.value);
  }
  std::vector<webhook_secret> secrets;
  for (const auto& text : texts) secrets.push_back(webhook_secret::parse(text));
  return secrets;
}

std::vector<std::string> load_query_tokens(const config& cfg) {
  if (!cfg.query.tokens.empty()) return cfg.query.tokens;
  const dev_credential dev = load_or_create_dev_query_token(cfg.storage.data_dir);
  spdlog::warn("no query token configured: the /v1 API takes the dev token in {} ({}); for "
               "production set --query-token-file", dev.file.string(),
               dev.created ? "created now" : "made on an earlier run");
  return {dev.value};
}

std::unique_ptr<boost::asio::ssl::context> load_tls(const config& cfg) {
  if (cfg.listen.plain_http) {
    spdlog::warn("serving plain HTTP (--plain-http): only behind a TLS-terminating proxy");
    return nullptr;
  }
  if (!cfg.listen.tls_cert.empty()) return make_tls_context(cfg.listen.tls_cert, cfg.listen.tls_key);
  const dev_certificate dev = load_or_create_dev_certificate(cfg.storage.data_dir);
  spdlog::warn("no TLS certificate configured: using the self-signed dev certificate {} "
               "(key {}{}); for production set --tls-cert and --tls-key",
               dev.cert.string(), dev.key.string(), dev.created ? ", created now" : "");
  return make_tls_context(dev.cert, dev.key);
}

const std::filesystem::path& prepared(const std::filesystem::path& dir) {
  prepare_data_dir(dir);
  return dir;
}

// The parts that live while requests are served; members are destroyed in reverse order,
// so the io_context (and the sessions it owns) goes before the writer and the store.
class service {
 public:
  explicit service(const config& cfg)
      : cfg_(cfg),
        lock_(prepared(cfg.storage.data_dir)),
        store_(database_path(cfg.storage.data_dir), store_options{cfg.storage.busy_timeout}),
        registry_(cfg.limits.max_connections) {}

  int run();

 private:
  void migrate();
  void add_routes(writer& w);
  void wait_for_signal(listener& l, net::io_context& ioc);
  void drain(net::io_context& ioc, std::chrono::steady_clock::time_point deadline);

  const config& cfg_;
  data_dir_lock lock_;
  store store_;
  connection_registry registry_;
  router router_;
  std::unique_ptr<reader_pool> readers_;
  std::unique_ptr<bearer_auth> auth_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
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

void service::add_routes(writer& w) {
  router_.add(http::verb::get, "/healthz",
              [](const request&, const path_params&, const responder& respond) { respond(json_reply(http::status::ok, R"({"status":"ok"})")); });
  router_.add(http::verb::post, "/webhooks/clerk",
              webhook_handler(w, load_secrets(cfg_), cfg_.webhook.tolerance));
  // One reader per HTTP thread: a query never waits for a connection, nor for the writer.
  readers_ = std::make_unique<reader_pool>(store_.file(), cfg_.runtime.threads,
                                           static_cast<int>(cfg_.storage.busy_timeout.count()));
  auth_ = std::make_unique<bearer_auth>(load_query_tokens(cfg_));
  add_query_routes(router_, *auth_, *readers_);
}

int service::run() {
  migrate();
  tls_ = load_tls(cfg_);
  writer_options writing;
  writing.queue_limit = cfg_.storage.writer_queue_limit;
  writing.max_batch = cfg_.storage.writer_max_batch;
  writing.batch_wait = cfg_.storage.writer_batch_wait;
  writing.delivery_retention = cfg_.webhook.delivery_retention;
  writer w(store_, writing);
  add_routes(w);
  {
    net::io_context ioc(static_cast<int>(cfg_.runtime.threads));
    const tcp::endpoint endpoint(net::ip::make_address(cfg_.listen.address), cfg_.listen.port);
    auto l = std::make_shared<listener>(ioc, endpoint, tls_.get(),
                                        session_settings{router_, cfg_.limits, registry_});
    const auto bound = l->local_endpoint();
    spdlog::info("usersync {} listening on {}://{}:{}/webhooks/clerk with {} threads", version,
                 tls_ ? "https" : "http", bound.address().to_string(), bound.port(),
                 cfg_.runtime.threads);
    l->run();
    wait_for_signal(*l, ioc);
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < cfg_.runtime.threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : threads) t.join();
    // Commits everything already queued; completions post to the stopped io_context, whose
    // destruction at the end of this block then releases the sessions they hold.
    w.stop();
  }
  store_.checkpoint();
  spdlog::info("usersync stopped cleanly");
  return 0;
}

void service::wait_for_signal(listener& l, net::io_context& ioc) {
  auto signals = std::make_shared<net::signal_set>(ioc, SIGINT, SIGTERM);
  signals->async_wait([this, signals, &l, &ioc](error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: no longer accepting; finishing in-flight requests (up to {}s)",
                 signo, cfg_.runtime.shutdown_timeout.count());
    l.stop();
    registry_.drain_all();
    // A second signal stops at once.
    signals->async_wait([&ioc](error_code e, int) {
      if (!e) ioc.stop();
    });
    drain(ioc, std::chrono::steady_clock::now() + cfg_.runtime.shutdown_timeout);
  });
}

void service::drain(net::io_context& ioc, std::chrono::steady_clock::time_point deadline) {
  if (registry_.active() == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (registry_.active() > 0) {
      spdlog::warn("shutdown deadline reached with {} connections open; closing them",
                   registry_.active());
    }
    ioc.stop();
    return;
  }
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(20));
  timer->async_wait([this, timer, &ioc, deadline](error_code) { drain(ioc, deadline); });
}

}  // namespace

int run_server(const config& cfg) {
  service s(cfg);
  return s.run();
}

}  // namespace usersync

// Fuzzes what a connection does with the bytes a client sends: Beast's request_parser with
// the server's limits (body 1 MiB, headers 16 KiB), fed in pieces the way a socket delivers
// them, then each request routed through a usersync::router holding the server's real route
// table, and the response finished and serialized as http_session::do_write does. Pipelined
// requests are handled in order while the connection stays keep-alive.
//
// Why a real writer and database rather than verify + decode in the harness: webhook_handler
// needs a writer, and with one on a SQLite file on tmpfs (scripts/fuzz.sh points TMPDIR at
// /dev/shm) the fuzzer reaches everything a request can reach - header lookup, verification,
// decoding, the store's SQL, the status table, and the /v1 query routes reading back what
// was written - through the handlers the server runs, not a copy of them. Only verified
// deliveries wait for the writer thread, so most executions stay on this thread and the
// target runs at thousands of exec/s. A fuzzer cannot forge an HMAC, so a request whose
// svix-signature (or, without one, webhook-signature) is exactly "fuzz-sign" is signed here
// with key B before routing; every other signature is verified as sent. The price of one
// database for the whole run: a finding that depends on what earlier inputs wrote may not
// reproduce alone, which is why a failure prints the last log lines with the response.
#include "router.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bearer_auth.hpp"
#include "fuzz_support.hpp"
#include "metrics.hpp"
#include "query_api.hpp"
#include "store.hpp"
#include "store_reader.hpp"
#include "swappable.hpp"
#include "temp_dir.hpp"
#include "webhook_handler.hpp"
#include "writer.hpp"

namespace {

using namespace usersync;

// The server's defaults (src/config.hpp) and the /v1 token the seeds and dictionary use.
constexpr std::size_t body_limit = 1024 * 1024;
constexpr std::uint32_t header_limit = 16 * 1024;
constexpr std::string_view query_token = "fuzz-query-token";
constexpr std::string_view sign_here = "fuzz-sign";

// What src/server.cpp composes for the main listener (the admin listener's /metrics and
// /readyz are a separate router), minus sockets and TLS. Members are destroyed in reverse
// order: routes and readers, then the writer (joined), then the store.
struct service {
  using secret_list = webhook_handler::secret_list;

  test::temp_dir dir{"usersync-fuzz"};  // $TMPDIR, removed at exit
  store db{dir.path() / "usersync.db", store_options{}};
  metrics stats;
  swappable<const secret_list> secrets{std::make_shared<const secret_list>(fuzz::fixed_secrets())};
  swappable<const bearer_auth> auth{
      std::make_shared<const bearer_auth>(std::vector<std::string>{std::string(query_token)})};
  std::unique_ptr<writer> w;
  std::unique_ptr<reader_pool> readers;
  router routes;

  service() {
    db.migrate();
    writer_options options;
    options.commit_latency = &stats.commit_latency;
    w = std::make_unique<writer>(db, options);
    readers = std::make_unique<reader_pool>(db.file(), 2, 5000);
    routes.add(http::verb::get, "/healthz", [](const request&, const path_params&, const responder& respond) {
      respond(json_reply(http::status::ok, R"({"status":"ok"})"));
    });
    routes.add(http::verb::post, "/webhooks/clerk",
               webhook_handler(*w, stats, secrets, default_tolerance, fuzz::fixed_now));
    add_query_routes(routes, auth, *readers);
  }
};

service& the_service() {
  static service s;
  return s;
}

// Logging stays on (every level), so the handlers' format strings run with fuzzed
// arguments, into a ring of the last few lines that a failure prints.
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> recent_logs;

void quiet_logs() {
  recent_logs = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(8);
  auto logger = std::make_shared<spdlog::logger>("fuzz", recent_logs);
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

[[noreturn]] void failed(const char* what, const response& res) {
  std::string detail = "response: " + std::to_string(res.result_int()) + " " + res.body() + "recent log:";
  for (const std::string& line : recent_logs->last_formatted()) detail += "\n  " + line;
  fuzz::property_failed(what, detail);
}

// The header webhook_handler reads: the svix-* name, or the webhook-* one when it is absent.
http::request<http::string_body>::const_iterator either(const request& req, std::string_view field) {
  const auto it = req.find("svix-" + std::string(field));
  return it != req.end() ? it : req.find("webhook-" + std::string(field));
}

std::string_view value_of(const request& req, std::string_view field) {
  const auto it = either(req, field);
  return it == req.end() ? std::string_view{} : std::string_view(it->value());
}

// Replaces a "fuzz-sign" signature with key B's signature of what webhook_handler will read.
void sign_if_asked(request& req) {
  const auto it = either(req, "signature");
  if (it == req.end() || it->value() != sign_here) return;
  const std::string name(it->name_string());
  const std::string signature = fuzz::independent_signature(
      fuzz::fixed_secrets()[1].key(), value_of(req, "id"), value_of(req, "timestamp"), req.body());
  req.set(name, signature);
}

// Routes one request and waits for its single answer, which may come from the writer thread.
reply route(const request& req) {
  auto answer = std::make_shared<std::promise<reply>>();
  auto done = answer->get_future();
  the_service().routes.handle(req, [answer](reply r) { answer->set_value(std::move(r)); });
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    fuzz::property_failed("a request got no response within 5 s");
  return done.get();
}

// http_session::do_write's finishing touches, then the bytes that would go on the wire.
void finish_and_serialize(reply r, unsigned version, bool keep_alive) {
  if (r.res.result() == http::status::internal_server_error)
    failed("a request ended in 500: an exception escaped or storage refused it", r.res);
  r.res.version(version == 10 ? 10 : 11);
  r.res.set(http::field::server, "usersync");
  r.res.keep_alive(keep_alive);
  r.res.prepare_payload();
  std::ostringstream wire;
  wire << r.res;
}

// Bytes arrive in pieces of 1 to 1024 bytes, the size chosen by the input's length, so the
// parser's need_more paths run without spending input bytes on a piece-size header.
class connection {
 public:
  explicit connection(std::string_view bytes)
      : bytes_(bytes), piece_(std::size_t{1} << (bytes.size() % 11)) {}

  // Reads one request as http_session::do_read does; false when the connection would close.
  bool read(std::optional<http::request_parser<http::string_body>>& parser) {
    parser.emplace();
    parser->body_limit(body_limit);
    parser->header_limit(header_limit);
    parser->eager(true);  // as http::async_read does
    error_code ec;
    bool need_more = false;
    while (!parser->is_done()) {
      if (pos_ == avail_ || need_more) {
        if (avail_ == bytes_.size()) {
          parser->put_eof(ec);  // the peer closed: end_of_stream, or a partial message
          return false;
        }
        avail_ = std::min(bytes_.size(), avail_ + piece_);
      }
      ec = {};
      pos_ += parser->put(net::buffer(bytes_.data() + pos_, avail_ - pos_), ec);
      need_more = ec == http::error::need_more;
      if (ec && !need_more) return false;  // the session answers 400/413/431 and closes
    }
    return true;
  }

 private:
  std::string_view bytes_;
  std::size_t piece_;
  std::size_t pos_ = 0;
  std::size_t avail_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  quiet_logs();
  the_service();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  connection conn({reinterpret_cast<const char*>(data), size});
  std::optional<http::request_parser<http::string_body>> parser;
  while (conn.read(parser)) {
    request req = parser->release();
    const bool keep_alive = req.keep_alive();
    sign_if_asked(req);
    finish_and_serialize(route(req), req.version(), keep_alive);
    if (!keep_alive) break;
  }
  return 0;
}

#include "http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <type_traits>

#include "logging.hpp"
#include "metrics.hpp"
#include "router.hpp"

namespace usersync {
namespace ssl = boost::asio::ssl;

bool connection_registry::try_reserve() {
  std::lock_guard lock(mutex_);
  if (reserved_ >= limit_) return false;
  ++reserved_;
  return true;
}

void connection_registry::unreserve() {
  std::lock_guard lock(mutex_);
  --reserved_;
}

bool connection_registry::add(session_base* s, std::weak_ptr<session_base> w) {
  std::lock_guard lock(mutex_);
  sessions_.emplace(s, std::move(w));
  return draining_;
}

void connection_registry::remove(session_base* s) {
  std::lock_guard lock(mutex_);
  sessions_.erase(s);
  --reserved_;
}

void connection_registry::drain_all() {
  std::vector<std::shared_ptr<session_base>> live;
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->drain();  // outside the lock: drain() posts to the session's strand
}

std::size_t connection_registry::active() const {
  std::lock_guard lock(mutex_);
  return reserved_;
}

namespace {

using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using plain_stream = beast::tcp_stream;

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == beast::http::make_error_code(http::error::bad_target).category();
}

// Framing that Beast parses but a server must refuse (RFC 9112 sections 3.2 and 6.3). A
// Transfer-Encoding that does not end in chunked leaves the body length unknown: Beast reads
// no body, and the bytes that follow would be taken as a second request that no proxy in front
// of us saw (request smuggling).
std::optional<std::string_view> framing_error(const request& req) {
  if (req.version() >= 11 && req.find(http::field::host) == req.end()) {
    return "an HTTP/1.1 request must have a Host header";
  }
  if (req.find(http::field::transfer_encoding) != req.end() && !req.chunked()) {
    return "a request's Transfer-Encoding must end in chunked";
  }
  return std::nullopt;
}

template <class Stream>
class http_session : public session_base, public std::enable_shared_from_this<http_session<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

 public:
  // Plain HTTP.
  http_session(const session_settings& settings, tcp::socket&& socket)
      : settings_(settings), stream_(std::move(socket)) {
    remember_peer();
  }

  // TLS: the context outlives the session even when SIGHUP replaces it.
  http_session(const session_settings& settings, std::shared_ptr<ssl::context> tls, tcp::socket&& socket)
      : settings_(settings), tls_(std::move(tls)), stream_(std::move(socket), *tls_) {
    remember_peer();
  }

  void remember_peer() {
    error_code ec;
    const auto peer = lowest().socket().remote_endpoint(ec);
    remote_ = ec ? std::string("?") : peer.address().to_string();
  }

  ~http_session() override { settings_.registry.remove(this); }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::on_run, this->shared_from_this()));
  }

  void drain() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->draining_ = true;
      if (!self->busy_) self->lowest().cancel();  // an idle read ends; the session closes
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void on_run() {
    if (draining_) return;  // shutdown began before this connection got going
    if constexpr (is_tls) {
      lowest().expires_after(settings_.limits.read_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              beast::bind_front_handler(&http_session::on_handshake,
                                                        this->shared_from_this()));
    } else {
      do_read();
    }
  }

  void on_handshake(error_code ec) {
    if (ec) {
      settings_.stats.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("{} TLS handshake failed: {}", remote_, ec.message());
      return;
    }
    do_read();
  }

  // Between requests on a kept-alive connection the client may stay silent for the idle
  // timeout; once the next request's first byte arrives, the read timeout bounds the rest of it
  // (a request trickled a byte at a time must not get the long idle allowance).
  void do_read() {
    if (draining_) return do_close();
    if (requests_ == 0 || buffer_.size() > 0) return read_request();
    lowest().expires_after(settings_.limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(first_read_bytes),
                            beast::bind_front_handler(&http_session::on_next_request_begins,
                                                      this->shared_from_this()));
  }

  void on_next_request_begins(error_code ec, std::size_t bytes) {
    buffer_.commit(bytes);
    if (ec) {
      spdlog::debug("{} kept-alive connection ended: {}", remote_, ec.message());
      return do_close();
    }
    if (draining_) return do_close();
    read_request();
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(settings_.limits.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(settings_.limits.header_limit));
    lowest().expires_after(settings_.limits.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, this->shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::body_limit) {
      return send_error(http::status::payload_too_large, "body_too_large",
                        "the request body is larger than the configured limit");
    }
    if (ec == http::error::header_limit) {
      return send_error(http::status::request_header_fields_too_large, "headers_too_large",
                        "the request headers are larger than the configured limit");
    }
    if (ec && is_http_parse_error(ec)) {
      return send_error(http::status::bad_request, "bad_request", "malformed HTTP request");
    }
    if (ec) {
      spdlog::debug("{} connection closed while reading: {}", remote_, ec.message());
      return;
    }
    if (const auto problem = framing_error(parser_->get())) {
      return send_error(http::status::bad_request, "bad_request", *problem);
    }
    ++requests_;
    busy_ = true;
    started_ = std::chrono::steady_clock::now();
    req_ = parser_->release();
    keep_alive_ = req_.keep_alive();
    settings_.routes.handle(req_, [self = this->shared_from_this()](reply r) {
      net::post(self->stream_.get_executor(),
                [self, r = std::move(r)]() mutable { self->do_write(std::move(r)); });
    });
  }

  void send_error(http::status status, std::string_view code, std::string_view message) {
    busy_ = true;
    keep_alive_ = false;
    started_ = std::chrono::steady_clock::now();
    req_ = {};
    // Keep the request line when it was read, so logs and metrics name the endpoint.
    if (parser_ && !parser_->get().target().empty()) {
      req_.method(parser_->get().method());
      req_.target(parser_->get().target());
    }
    do_write(json_error(status, code, message));
  }

  void do_write(reply r) {
    res_.emplace(std::move(r.res));
    res_->version(req_.version() == 10 ? 10 : 11);
    res_->set(http::field::server, "usersync");
    res_->keep_alive(keep_alive_ && !draining_);
    res_->prepare_payload();
    log(r);
    lowest().expires_after(settings_.limits.write_timeout);
    http::async_write(stream_, *res_,
                      beast::bind_front_handler(&http_session::on_write, this->shared_from_this()));
  }

  void log(const reply& r) {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started_;
    const std::string_view target = req_.target();
    const std::string_view path = target.empty() ? "-" : target.substr(0, target.find('?'));
    const std::string_view handler = metrics::handler_for(path);
    settings_.stats.http_requests.add("handler=\"" + std::string(handler) + "\",code=\"" +
                                      std::to_string(res_->result_int()) + "\"");
    settings_.stats.request_latency.at(std::string(handler)).observe(elapsed.count());
    log_request({remote_, req_.method() == http::verb::unknown ? "-" : req_.method_string(), path,
                 res_->result_int(), elapsed.count() * 1000, r.svix_id, r.event_type, r.outcome});
  }

  void on_write(error_code ec, std::size_t) {
    busy_ = false;
    if (ec) {
      spdlog::debug("{} connection closed while writing: {}", remote_, ec.message());
      return;
    }
    const bool again = res_->keep_alive();
    res_.reset();
    if (!again) return do_close();
    do_read();
  }

  void do_close() {
    if (closed_) return;
    closed_ = true;
    if constexpr (is_tls) {
      lowest().expires_after(settings_.limits.write_timeout);
      stream_.async_shutdown([self = this->shared_from_this()](error_code) {});
    } else {
      error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  static constexpr std::size_t first_read_bytes = 4096;

  session_settings settings_;
  std::shared_ptr<ssl::context> tls_;  // declared before stream_, which refers to it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  request req_;
  std::optional<response> res_;
  std::string remote_;
  std::chrono::steady_clock::time_point started_;
  std::size_t requests_ = 0;
  bool busy_ = false;
  bool keep_alive_ = false;
  bool draining_ = false;
  bool closed_ = false;
};

template <class Session, class... Args>
void launch(const session_settings& settings, Args&&... args) {
  auto session = std::make_shared<Session>(settings, std::forward<Args>(args)...);
  const bool shutting_down = settings.registry.add(session.get(), session);
  session->run();
  if (shutting_down) session->drain();
}

}  // namespace

void start_session(tcp::socket socket, std::shared_ptr<ssl::context> tls,
                   const session_settings& settings) {
  if (tls != nullptr) {
    launch<http_session<tls_stream>>(settings, std::move(tls), std::move(socket));
  } else {
    launch<http_session<plain_stream>>(settings, std::move(socket));
  }
}

}  // namespace usersync

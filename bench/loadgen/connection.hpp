#pragma once
// One client connection (internal to load_run.cpp): connect, TLS handshake, then for each of
// its events write the pre-signed request and read the answer, one at a time. It runs on one
// io_context with one thread, so it needs no strand. After an I/O error or a
// "Connection: close" it reconnects and goes on with its next event.
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

#include "load_run.hpp"

namespace loadgen {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = beast::error_code;
using steady = std::chrono::steady_clock;

inline constexpr unsigned max_reconnects = 1000;  // per connection: a dead server ends the run

// What every connection shares. The driver sets `start` and `deadline` before posting
// begin(); connections only read them after that.
struct run_state {
  const options& opts;
  const event_plan& plan;
  const request_builder& builder;
  signed_batch& batch;
  std::vector<result>& results;
  const std::vector<tcp::endpoint>& endpoints;
  ssl::context* tls = nullptr;
  steady::time_point start{};
  std::optional<steady::time_point> deadline;

  std::mutex mutex;
  std::condition_variable changed;
  unsigned ready = 0;     // connections that finished connecting, successfully or not
  unsigned finished = 0;  // connections that are done sending

  void count(unsigned run_state::*counter) {
    std::lock_guard lock(mutex);
    ++(this->*counter);
    changed.notify_all();
  }
};

template <class Stream>
class connection : public std::enable_shared_from_this<connection<Stream>> {
  static constexpr bool tls = std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>;

 public:
  connection(run_state& run, net::io_context& ioc, std::uint32_t id)
      : run_(run), ioc_(ioc), queue_(run.plan.by_connection[id]), timer_(ioc) {
    stats_.latency_ns.reserve(queue_.size());
  }

  void connect() { do_connect(); }
  void begin() {
    started_ = true;
    do_next();
  }
  bool usable() const { return usable_; }
  tally& stats() { return stats_; }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(*stream_); }
  std::chrono::nanoseconds timeout() const {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(run_.opts.timeout_s * 1e9));
  }

  void do_connect() {
    if constexpr (tls) {
      stream_.emplace(ioc_, *run_.tls);
      prepare_tls();
    } else {
      stream_.emplace(ioc_);
    }
    buffer_.clear();
    lowest().expires_after(timeout());
    lowest().async_connect(run_.endpoints, beast::bind_front_handler(&connection::on_connect, this->shared_from_this()));
  }

  void prepare_tls() {
    const std::string& host = run_.opts.url.host;
    error_code ec;
    net::ip::make_address(host, ec);
    if (ec) {  // SNI for names only; SSL_set_tlsext_host_name is this call behind a C cast
      SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(host.c_str()));
    }
    if (!run_.opts.insecure) stream_->set_verify_callback(ssl::host_name_verification(host));
  }

  void on_connect(error_code ec, const tcp::endpoint&) {
    if (ec) return on_ready(ec);
    lowest().socket().set_option(tcp::no_delay(true), ec);
    if constexpr (tls) {
      stream_->async_handshake(ssl::stream_base::client,
                               beast::bind_front_handler(&connection::on_ready, this->shared_from_this()));
    } else {
      on_ready({});
    }
  }

  void on_ready(error_code ec) {
    if (!started_) {
      usable_ = !ec;
      run_.count(&run_state::ready);
      return;
    }
    if (ec && next_ == queue_.size()) return finish();
    if (ec) return fail(ec);  // the next event is charged with the failed reconnection
    do_next();
  }

  void do_next() {
    if (next_ == queue_.size() || (run_.deadline && steady::now() >= *run_.deadline)) return finish();
    const std::uint32_t index = queue_[next_];
    if (run_.opts.rate > 0) {
      scheduled_ = run_.start + std::chrono::nanoseconds(static_cast<std::int64_t>(index * 1e9 / run_.opts.rate));
      if (steady::now() < scheduled_) {
        timer_.expires_at(scheduled_);
        timer_.async_wait([self = this->shared_from_this()](error_code) { self->do_send(); });
        return;
      }
    }
    do_send();
  }

  void do_send() {
    if (run_.deadline && steady::now() >= *run_.deadline) return finish();  // woke up too late
    const std::uint32_t index = queue_[next_];
    if (unix_now() - run_.batch.signed_at[index] > resign_after_s) renew(index);
    sent_at_ = steady::now();
    ++stats_.sent;
    lowest().expires_after(timeout());
    net::async_write(*stream_, net::buffer(run_.batch.requests[index]),
                     beast::bind_front_handler(&connection::on_write, this->shared_from_this()));
  }

  void renew(std::uint32_t index) {
    const std::int64_t now = unix_now();
    run_.batch.requests[index] = run_.builder.build(run_.plan.events[index], index, now);
    run_.batch.signed_at[index] = now;
    ++stats_.resigned;
  }

  void on_write(error_code ec, std::size_t) {
    if (ec) return fail(ec);
    parser_.emplace();
    parser_->body_limit(1 << 20);
    http::async_read(*stream_, buffer_, *parser_,
                     beast::bind_front_handler(&connection::on_read, this->shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
    if (ec) return fail(ec);
    // In fixed-rate mode latency runs from the scheduled send time, so a server that stalls
    // is charged for the requests it delayed too (no coordinated omission).
    const auto from = run_.opts.rate > 0 ? scheduled_ : sent_at_;
    stats_.latency_ns.push_back((steady::now() - from).count());
    const auto& res = parser_->get();
    const result r = classify(res.result_int(), res.body());
    if (r == result::non_2xx) ++stats_.by_status[res.result_int()];
    record(r);
    if (!res.keep_alive()) return reconnect();
    do_next();
  }

  void record(result r) {
    run_.results[queue_[next_]] = r;
    ++stats_.by_result[static_cast<std::size_t>(r)];
    ++next_;
  }

  void fail(error_code ec) {
    if (ec == beast::error::timeout) ++stats_.timeouts;
    record(result::failed);
    reconnect();
  }

  void reconnect() {
    close();
    if (++stats_.reconnects > max_reconnects) return finish();
    do_connect();
  }

  void close() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }

  void finish() {
    if (stream_) close();
    run_.count(&run_state::finished);
  }

  run_state& run_;
  net::io_context& ioc_;
  const std::vector<std::uint32_t>& queue_;
  std::optional<Stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  net::steady_timer timer_;
  tally stats_;
  std::size_t next_ = 0;
  steady::time_point sent_at_{};
  steady::time_point scheduled_{};
  bool started_ = false;
  bool usable_ = false;
};

}  // namespace loadgen

#include "listener.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

#include "metrics.hpp"

#include <stdexcept>

namespace usersync {
namespace {

[[noreturn]] void fail(const tcp::endpoint& endpoint, const char* step, const error_code& ec) {
  std::string address = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  throw std::runtime_error("cannot listen on " + address + " (" + step + "): " + ec.message() +
                           "; stop whatever holds the port or choose another with --listen");
}

}  // namespace

listener::listener(net::io_context& ioc, const tcp::endpoint& endpoint,
                   const swappable<boost::asio::ssl::context>* tls, const session_settings& settings)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), tls_(tls), settings_(settings) {
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) fail(endpoint, "open", ec);
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) fail(endpoint, "set_option", ec);
  acceptor_.bind(endpoint, ec);
  if (ec) fail(endpoint, "bind", ec);
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail(endpoint, "listen", ec);
}

void listener::run() { do_accept(); }

void listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    error_code ignored;
    self->acceptor_.close(ignored);
  });
}

void listener::do_accept() {
  acceptor_.async_accept(net::make_strand(ioc_),
                         beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;  // stopped
  if (ec) {
    spdlog::warn("accept failed: {}; still accepting", ec.message());
  } else if (!settings_.registry.try_reserve()) {
    settings_.stats.connections_refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("connection limit ({}) reached: closing a new connection; raise "
                 "--max-connections if this is normal load", settings_.limits.max_connections);
    socket.close(ec);
  } else {
    socket.set_option(tcp::no_delay(true), ec);
    start_session(std::move(socket), tls_ != nullptr ? tls_->get() : nullptr, settings_);
  }
  do_accept();
}

}  // namespace usersync

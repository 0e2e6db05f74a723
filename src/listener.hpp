#pragma once
// Accepts connections on its own strand and gives each one a strand and a session. A bind
// failure throws: the service must not start without its port.
#include <memory>

#include "http_session.hpp"
#include "net.hpp"
#include "swappable.hpp"

namespace usersync {

class listener : public std::enable_shared_from_this<listener> {
 public:
  // Binds and listens; throws std::runtime_error naming the address and the fix. `tls` null
  // means plain HTTP; otherwise each new connection takes the context current at accept.
  listener(net::io_context& ioc, const tcp::endpoint& endpoint,
           const swappable<boost::asio::ssl::context>* tls, const session_settings& settings);

  void run();
  // Stops accepting; connections already accepted carry on. Safe from any thread.
  void stop();
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

 private:
  void do_accept();
  void on_accept(error_code ec, tcp::socket socket);

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  const swappable<boost::asio::ssl::context>* tls_;
  session_settings settings_;
};

}  // namespace usersync

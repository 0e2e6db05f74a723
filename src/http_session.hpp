#pragma once
// One connection: optional TLS handshake, bounded reads with timeouts, keep-alive, close.
// Each session runs on its own strand; it moves bytes and leaves meaning to the router.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "config.hpp"
#include "net.hpp"

namespace boost::asio::ssl { class context; }

namespace usersync {

class router;
class metrics;

// What the listener hands every session; the registry counts them for the connection limit
// and finds them to drain on shutdown.
class session_base {
 public:
  virtual ~session_base() = default;
  // Called on shutdown: finish the request in flight, if any, then close.
  virtual void drain() = 0;
};

class connection_registry {
 public:
  explicit connection_registry(std::size_t limit) : limit_(limit) {}

  // Takes a connection slot; false when the limit is reached.
  bool try_reserve();
  // Undoes try_reserve for a connection that never became a session.
  void unreserve();
  // Registers a started session; returns true when shutdown has begun, so the caller drains
  // it at once (it was accepted after drain_all() ran).
  bool add(session_base* s, std::weak_ptr<session_base> w);
  // Called by a session's destructor; frees its slot.
  void remove(session_base* s);
  void drain_all();
  std::size_t active() const;

 private:
  std::size_t limit_;
  std::size_t reserved_ = 0;
  bool draining_ = false;
  mutable std::mutex mutex_;
  std::map<session_base*, std::weak_ptr<session_base>> sessions_;
};

struct session_settings {
  const router& routes;
  const limits_config& limits;
  connection_registry& registry;
  metrics& stats;
};

// Starts a session on an accepted socket whose slot is reserved; `tls` null means plain HTTP.
// The session keeps the context alive, so a SIGHUP may replace it for new connections.
void start_session(tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls,
                   const session_settings& settings);

}  // namespace usersync

#pragma once
// Where the load goes: a parsed URL and its resolved endpoints. Load generation on this
// machine may only ever reach loopback addresses, so resolution refuses anything else.
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loadgen {

struct target_url {
  bool tls = true;
  std::string host;        // without brackets for IPv6
  std::uint16_t port = 0;
  std::string path = "/";  // path and query, as sent
  std::string host_header() const;  // host[:port] as the Host header spells it
};

// "https://127.0.0.1:8443/webhooks/clerk", "http://[::1]:8080/x", "https://localhost/x".
// nullopt for anything else (other schemes, user info, missing host, bad port).
std::optional<target_url> parse_url(std::string_view text);

// 127.0.0.0/8, ::1, and IPv4-mapped 127.0.0.0/8.
bool is_loopback(const boost::asio::ip::address& address);

// Resolves host and port; throws std::runtime_error unless every resolved address is
// loopback (a name that resolves anywhere else is refused, not filtered).
std::vector<boost::asio::ip::tcp::endpoint> resolve_loopback(const target_url& url);

}  // namespace loadgen

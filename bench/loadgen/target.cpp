#include "target.hpp"

#include <boost/asio/io_context.hpp>

#include <charconv>
#include <stdexcept>

namespace loadgen {
namespace net = boost::asio;

std::string target_url::host_header() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  const bool default_port = port == (tls ? 443 : 80);
  if (!default_port) out += ":" + std::to_string(port);
  return out;
}

namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// Splits "host", "host:port", "[v6]" or "[v6]:port" into url.host and url.port.
bool parse_authority(std::string_view authority, target_url& url) {
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    url.host = std::string(authority.substr(1, close - 1));
    const auto rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port_text = rest.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty() || url.host.find('@') != std::string::npos) return false;
  if (port_text.empty()) return true;
  const auto port = parse_port(port_text);
  if (!port) return false;
  url.port = *port;
  return true;
}

}  // namespace

std::optional<target_url> parse_url(std::string_view text) {
  target_url url;
  if (text.rfind("https://", 0) == 0) {
    text.remove_prefix(8);
  } else if (text.rfind("http://", 0) == 0) {
    url.tls = false;
    text.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  url.port = url.tls ? 443 : 80;
  const auto slash = text.find('/');
  if (!parse_authority(text.substr(0, slash), url)) return std::nullopt;
  if (slash != std::string_view::npos) url.path = std::string(text.substr(slash));
  return url;
}

bool is_loopback(const net::ip::address& address) {
  if (address.is_v4()) return (address.to_v4().to_uint() >> 24) == 127;
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return is_loopback(net::ip::make_address_v4(net::ip::v4_mapped, v6));
  return v6.is_loopback();
}

std::vector<net::ip::tcp::endpoint> resolve_loopback(const target_url& url) {
  net::io_context ioc;
  net::ip::tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  const auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) throw std::runtime_error("cannot resolve " + url.host + ": " + ec.message());
  std::vector<net::ip::tcp::endpoint> endpoints;
  for (const auto& entry : results) {
    if (!is_loopback(entry.endpoint().address())) {
      throw std::runtime_error(url.host + " resolves to " + entry.endpoint().address().to_string() +
                               ", which is not a loopback address: the load generator only "
                               "targets 127.0.0.0/8 or ::1 on this machine");
    }
    endpoints.push_back(entry.endpoint());
  }
  if (endpoints.empty()) throw std::runtime_error(url.host + " resolves to no address");
  return endpoints;
}

}  // namespace loadgen

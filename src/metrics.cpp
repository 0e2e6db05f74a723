#include "metrics.hpp"

#include <charconv>
#include <cmath>

namespace usersync {
namespace {

// The shortest plain decimal that reads back as `v` (0.00025, not 0.00025000000000000001
// nor 2.5e-04).
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[400];  // room for any double in fixed notation
  const auto result = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, result.ptr);
}

void header(std::string& out, std::string_view name, std::string_view help, std::string_view kind) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(kind).append("\n");
}

std::string with_label(std::string_view labels, std::string_view extra) {
  if (labels.empty()) return "{" + std::string(extra) + "}";
  return "{" + std::string(labels) + "," + std::string(extra) + "}";
}

constexpr std::array<std::string_view, 6> handlers = {"webhook", "query", "healthz", "readyz",
                                                      "metrics", "other"};

}  // namespace

void histogram::observe(double seconds) {
  for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
    if (seconds <= latency_buckets[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  std::uint64_t cumulative = 0;
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out.append(bucket).append(with_label(labels, "le=\"" + number(latency_buckets[i]) + "\""));
    out.append(" ").append(std::to_string(cumulative)).append("\n");
  }
  const std::uint64_t count = count_.load(std::memory_order_relaxed);
  out.append(bucket).append(with_label(labels, "le=\"+Inf\"")).append(" ").append(std::to_string(count)).append("\n");
  const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  out.append(name).append("_sum").append(braces).append(" ")
      .append(number(static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9)).append("\n");
  out.append(name).append("_count").append(braces).append(" ").append(std::to_string(count)).append("\n");
}

void labeled_counter::add(const std::string& labels, std::uint64_t n) {
  std::lock_guard lock(mutex_);
  values_[labels] += n;
}

void labeled_counter::render(std::string& out, std::string_view name) const {
  std::lock_guard lock(mutex_);
  for (const auto& [labels, value] : values_) {
    out.append(name).append("{").append(labels).append("} ").append(std::to_string(value)).append("\n");
  }
}

metrics::metrics() {
  for (std::string_view h : handlers) request_latency[std::string(h)];
}

void metrics::add_gauge(std::string name, std::string help, std::function<double()> value) {
  computed_.push_back({std::move(name), std::move(help), "gauge", std::move(value)});
}

void metrics::add_counter(std::string name, std::string help, std::function<double()> value) {
  computed_.push_back({std::move(name), std::move(help), "counter", std::move(value)});
}

std::string metrics::render() const {
  std::string out;
  header(out, "usersync_webhook_deliveries_total",
         "Webhook deliveries by event type and outcome (applied, duplicate, stale, ignored, "
         "rejected, unauthorized, failed)", "counter");
  deliveries.render(out, "usersync_webhook_deliveries_total");
  header(out, "usersync_http_requests_total", "HTTP requests by handler and status code", "counter");
  http_requests.render(out, "usersync_http_requests_total");
  header(out, "usersync_http_request_duration_seconds",
         "Time from a complete request to its response, by handler", "histogram");
  for (const auto& [handler, h] : request_latency) {
    h.render(out, "usersync_http_request_duration_seconds", "handler=\"" + handler + "\"");
  }
  header(out, "usersync_commit_duration_seconds",
         "Time of one writer transaction, from BEGIN to a durable COMMIT", "histogram");
  commit_latency.render(out, "usersync_commit_duration_seconds", "");
  header(out, "usersync_tls_handshake_failures_total", "TLS handshakes that failed or timed out", "counter");
  out += "usersync_tls_handshake_failures_total " + std::to_string(tls_handshake_failures.load()) + "\n";
  header(out, "usersync_connections_refused_total", "Connections closed at once: over --max-connections", "counter");
  out += "usersync_connections_refused_total " + std::to_string(connections_refused.load()) + "\n";
  for (const computed& c : computed_) {
    header(out, c.name, c.help, c.kind);
    out += c.name + " " + number(c.value()) + "\n";
  }
  return out;
}

std::string_view metrics::handler_for(std::string_view path) {
  if (path == "/webhooks/clerk") return "webhook";
  if (path.rfind("/v1/", 0) == 0 || path == "/v1") return "query";
  if (path == "/healthz") return "healthz";
  if (path == "/readyz") return "readyz";
  if (path == "/metrics") return "metrics";
  return "other";
}

std::string metrics::event_type_label(std::string_view type) {
  // Clerk's event types are lowercase words joined by dots (user.created, session.ended...).
  if (type.empty() || type.size() > 48) return "other";
  for (char c : type) {
    if (!((c >= 'a' && c <= 'z') || c == '.' || c == '_')) return "other";
  }
  return std::string(type);
}

}  // namespace usersync

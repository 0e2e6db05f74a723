#pragma once
// Prometheus metrics: lock-free counters and histograms updated from any thread, and the
// text exposition format rendered on scrape. Label sets are small and fixed (event types are
// folded to a known set), so a hostile sender cannot grow them.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace usersync {

// Latency buckets in seconds, from 100 µs to 10 s.
inline constexpr std::array<double, 14> latency_buckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 10};

class histogram {
 public:
  void observe(double seconds);
  // Appends NAME_bucket/_sum/_count lines with `labels` ("" or `key="value"`).
  void render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::array<std::atomic<std::uint64_t>, latency_buckets.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanos_{0};
};

// A counter per label value, for labels whose values are known in advance or bounded.
class labeled_counter {
 public:
  void add(const std::string& labels, std::uint64_t n = 1);
  void render(std::string& out, std::string_view name) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> values_;
};

// Everything usersync exports. Gauges that are read at scrape time (queue depth, file sizes,
// user count, last backup) come from `gauge_sources`, registered by the server.
class metrics {
 public:
  labeled_counter deliveries;        // {type, outcome}
  labeled_counter http_requests;     // {handler, code}
  std::map<std::string, histogram> request_latency;  // by handler; keys fixed at construction
  histogram commit_latency;
  std::atomic<std::uint64_t> tls_handshake_failures{0};
  std::atomic<std::uint64_t> connections_refused{0};

  metrics();

  // A gauge computed at scrape time: name, help, and a function returning its value.
  void add_gauge(std::string name, std::string help, std::function<double()> value);
  // A counter computed at scrape time (e.g. the writer's commit count).
  void add_counter(std::string name, std::string help, std::function<double()> value);

  // The full text exposition (version 0.0.4).
  std::string render() const;

  // The handler label for a request path: a fixed set, so paths cannot grow the label space.
  static std::string_view handler_for(std::string_view path);
  // The type label for an event type: Clerk's own names pass, anything else is "other".
  static std::string event_type_label(std::string_view type);

 private:
  struct computed {
    std::string name, help, kind;
    std::function<double()> value;
  };
  std::vector<computed> computed_;
};

}  // namespace usersync

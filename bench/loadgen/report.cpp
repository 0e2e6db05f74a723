#include "report.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <thread>

namespace loadgen {
namespace json = boost::json;
namespace {

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

double rank(const std::vector<std::int64_t>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  const auto i = static_cast<std::size_t>(std::max(1.0, std::ceil(q * n))) - 1;
  return ms(sorted[std::min(i, sorted.size() - 1)]);
}

std::uint64_t acknowledged_count(const tally& t) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < result_kinds; ++i) {
    if (acknowledged(static_cast<result>(i))) n += t.by_result[i];
  }
  return n;
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

std::string mode(const options& o) {
  if (o.rate > 0) return "fixed rate " + std::to_string(static_cast<long long>(o.rate)) + " events/s";
  return "closed loop (as fast as answers come)";
}

std::uint64_t unsent(const load_result& load) {
  return static_cast<std::uint64_t>(std::count(load.results.begin(), load.results.end(), result::unsent));
}

double per_event_us(double seconds, std::uint64_t events) {
  return events > 0 ? seconds * 1e6 / static_cast<double>(events) : 0;
}

double per_second(std::uint64_t n, double seconds) { return seconds > 0 ? static_cast<double>(n) / seconds : 0; }

void print_method(std::ostream& out, const run_report& r) {
  const options& o = r.opts;
  out << "usersync-loadgen" << (o.label.empty() ? "" : " [" + o.label + "]") << "\n"
      << "  target    POST " << (o.url.tls ? "https://" : "http://") << o.url.host_header() << o.url.path
      << (o.url.tls ? (o.insecure ? " (TLS, certificate not verified)" : " (TLS, verified)") : " (plain HTTP)") << "\n"
      << "  load      " << o.connections << " keep-alive connections on " << o.threads << " thread(s), "
      << mode(o) << ", at most " << o.events << " events"
      << (o.duration_s > 0 ? " and " + seconds_text(o.duration_s) + " s" : "") << "\n"
      << "  events    " << r.plan.events.size() << " planned over " << r.plan.users_touched
      << " users: created " << r.plan.count(event_type::created) << ", updated "
      << r.plan.count(event_type::updated) << ", deleted " << r.plan.count(event_type::deleted)
      << "; mean body " << (r.batch.requests.empty() ? 0 : r.batch.body_bytes / r.batch.requests.size()) << " B\n"
      << "  outside the clock: building and signing " << std::setprecision(3) << r.batch.seconds
      << " s, connecting " << r.load.connect_seconds << " s (" << r.load.connected << " connected)\n";
}

void print_figures(std::ostream& out, run_report& r) {
  tally& t = r.load.totals;
  const latency_summary l = summarize(t.latency_ns);
  const std::uint64_t acked = acknowledged_count(t);
  out << std::fixed << std::setprecision(0)
      << "  result    " << acked << " acknowledged (2xx) in " << std::setprecision(2) << r.load.seconds
      << " s = " << std::setprecision(0) << per_second(acked, r.load.seconds) << " events/s"
      << " (sent " << t.sent << "); generator CPU " << std::setprecision(1)
      << per_event_us(r.load.cpu_seconds, acked) << " us/event, " << std::setprecision(0)
      << (r.load.seconds > 0 ? 100 * r.load.cpu_seconds / r.load.seconds : 0) << "% of a core\n"
      << "  machine   every process together used " << std::setprecision(2)
      << (r.load.seconds > 0 ? r.load.machine_cpu_seconds / r.load.seconds : 0)
      << " cores while timed (of " << std::thread::hardware_concurrency() << ")\n"
      << std::setprecision(3) << "  latency   p50 " << l.p50_ms << " ms, p90 " << l.p90_ms << " ms, p99 "
      << l.p99_ms << " ms, p99.9 " << l.p999_ms << " ms, max " << l.max_ms << " ms"
      << (r.opts.rate > 0 ? " (from the scheduled send time)" : " (from the send)") << "\n"
      << "  outcomes  applied " << t.count(result::applied) << ", duplicate " << t.count(result::duplicate)
      << ", stale " << t.count(result::stale) << ", ignored " << t.count(result::ignored) << ", other 2xx "
      << t.count(result::other_2xx) << "\n"
      << "  failures  non-2xx " << t.count(result::non_2xx);
  for (const auto& [status, n] : t.by_status) out << " [" << status << ": " << n << "]";
  out << ", errors " << t.count(result::failed) << " (timeouts " << t.timeouts << "), reconnects "
      << t.reconnects << ", unsent " << unsent(r.load) << ", re-signed " << t.resigned << "\n";
}

void print_verified(std::ostream& out, const verify_report& v) {
  out << "  verify    " << (v.ok() ? "OK" : "FAILED") << ": " << v.deliveries_checked
      << " acknowledged svix-ids and " << v.users_checked << " users checked; missing deliveries "
      << v.missing_deliveries << ", missing users " << v.missing_users << ", stale users " << v.stale_users
      << ", missing tombstones " << v.missing_tombstones << ", resurrected users " << v.resurrected_users << "\n";
  for (const auto& e : v.examples) out << "            e.g. " << e << "\n";
}

}  // namespace

latency_summary summarize(std::vector<std::int64_t>& ns) {
  latency_summary s;
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  s.p50_ms = rank(ns, 0.50);
  s.p90_ms = rank(ns, 0.90);
  s.p99_ms = rank(ns, 0.99);
  s.p999_ms = rank(ns, 0.999);
  s.max_ms = ms(ns.back());
  s.mean_ms = std::accumulate(ns.begin(), ns.end(), 0.0, [](double a, std::int64_t b) { return a + ms(b); }) /
              static_cast<double>(ns.size());
  return s;
}

void print_text(std::ostream& out, run_report& r) {
  print_method(out, r);
  print_figures(out, r);
  if (r.verified) print_verified(out, *r.verified);
}

void print_json(std::ostream& out, run_report& r) {
  tally& t = r.load.totals;
  const latency_summary l = summarize(t.latency_ns);
  const std::uint64_t acked = acknowledged_count(t);
  json::object o{{"label", r.opts.label},
                 {"tls", r.opts.url.tls},
                 {"connections", r.opts.connections},
                 {"threads", r.opts.threads},
                 {"rate", r.opts.rate},
                 {"planned", r.plan.events.size()},
                 {"users", r.plan.users_touched},
                 {"sent", t.sent},
                 {"acknowledged", acked},
                 {"seconds", r.load.seconds},
                 {"events_per_s", per_second(acked, r.load.seconds)},
                 {"p50_ms", l.p50_ms}, {"p90_ms", l.p90_ms}, {"p99_ms", l.p99_ms},
                 {"p999_ms", l.p999_ms}, {"max_ms", l.max_ms}, {"mean_ms", l.mean_ms},
                 {"applied", t.count(result::applied)}, {"duplicate", t.count(result::duplicate)},
                 {"stale", t.count(result::stale)}, {"ignored", t.count(result::ignored)},
                 {"non_2xx", t.count(result::non_2xx)}, {"errors", t.count(result::failed)}, {"unsent", unsent(r.load)},
                 {"timeouts", t.timeouts}, {"reconnects", t.reconnects}, {"resigned", t.resigned},
                 {"sign_seconds", r.batch.seconds},
                 {"generator_cpu_us_per_event", per_event_us(r.load.cpu_seconds, acked)},
                 {"generator_cpu_seconds", r.load.cpu_seconds},
                 {"machine_cpu_seconds", r.load.machine_cpu_seconds}, {"connect_seconds", r.load.connect_seconds}};
  json::object statuses;
  for (const auto& [status, n] : t.by_status) statuses[std::to_string(status)] = n;
  o["non_2xx_by_status"] = std::move(statuses);
  if (r.verified) {
    const verify_report& v = *r.verified;
    o["verify"] = json::object{{"ok", v.ok()}, {"deliveries_checked", v.deliveries_checked},
                               {"users_checked", v.users_checked}, {"missing_deliveries", v.missing_deliveries},
                               {"missing_users", v.missing_users}, {"stale_users", v.stale_users},
                               {"missing_tombstones", v.missing_tombstones},
                               {"resurrected_users", v.resurrected_users}};
  }
  out << json::serialize(o) << "\n";
}

}  // namespace loadgen

// The load generator's own rules: loopback only, a Clerk-like life per user, requests the
// service accepts. No sockets are opened and nothing is timed here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <boost/beast/http.hpp>

#include <map>
#include <set>

#include "clerk_event.hpp"
#include "clerk_payload.hpp"
#include "event_plan.hpp"
#include "load_run.hpp"
#include "report.hpp"
#include "signed_requests.hpp"
#include "svix_verify.hpp"
#include "target.hpp"

namespace http = boost::beast::http;
namespace net = boost::asio;
using namespace loadgen;

namespace {
const char* const secret_text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
}  // namespace

TEST_CASE("only loopback addresses are targets") {
  CHECK(is_loopback(net::ip::make_address("127.0.0.1")));
  CHECK(is_loopback(net::ip::make_address("127.8.9.10")));
  CHECK(is_loopback(net::ip::make_address("::1")));
  CHECK(is_loopback(net::ip::make_address("::ffff:127.0.0.1")));
  CHECK_FALSE(is_loopback(net::ip::make_address("10.0.0.1")));
  CHECK_FALSE(is_loopback(net::ip::make_address("192.168.1.20")));
  CHECK_FALSE(is_loopback(net::ip::make_address("::ffff:10.0.0.1")));
  CHECK_FALSE(is_loopback(net::ip::make_address("0.0.0.0")));
  CHECK_THROWS(resolve_loopback(*parse_url("http://10.1.2.3:8080/webhooks/clerk")));
  CHECK(resolve_loopback(*parse_url("https://127.0.0.1:8443/webhooks/clerk")).size() == 1);
}

TEST_CASE("a url gives scheme, host, port and path") {
  auto u = parse_url("https://[::1]:9443/webhooks/clerk");
  REQUIRE(u);
  CHECK(u->tls);
  CHECK(u->host == "::1");
  CHECK(u->port == 9443);
  CHECK(u->path == "/webhooks/clerk");
  CHECK(u->host_header() == "[::1]:9443");
  auto plain = parse_url("http://localhost");
  REQUIRE(plain);
  CHECK_FALSE(plain->tls);
  CHECK(plain->port == 80);
  CHECK(plain->path == "/");
  CHECK_FALSE(parse_url("ftp://127.0.0.1/x"));
  CHECK_FALSE(parse_url("http://user@127.0.0.1/x"));
  CHECK_FALSE(parse_url("http://127.0.0.1:0/x"));
  CHECK_FALSE(parse_url("http://127.0.0.1:99999/x"));
}

TEST_CASE("each user is created first, then updated in order, and deleted only last") {
  const event_plan plan = make_plan({20000, 1000, 0.2, 64, 8});
  CHECK(plan.events.size() == 20000);
  std::map<std::uint32_t, std::vector<planned_event>> lives;
  for (const auto& e : plan.events) lives[e.user].push_back(e);
  CHECK(lives.size() == 1000);
  std::size_t deleted = 0;
  for (const auto& [user, life] : lives) {
    CHECK(life.front().type == event_type::created);
    for (std::size_t v = 0; v < life.size(); ++v) {
      CHECK(life[v].version == v);
      if (v > 0) CHECK(updated_at_ms(user, life[v].version) > updated_at_ms(user, life[v - 1].version));
      if (v + 1 < life.size()) CHECK(life[v].type != event_type::deleted);
    }
    if (life.back().type == event_type::deleted) ++deleted;
  }
  CHECK(deleted > 150);
  CHECK(deleted < 250);
}

TEST_CASE("creations, updates and deletions are mixed through the run, not in phases") {
  const event_plan plan = make_plan({100000, 10000, 0.1, 1024, 64});
  const std::size_t quarter = plan.events.size() / 4;
  for (std::size_t q = 0; q < 4; ++q) {
    std::map<event_type, std::size_t> kinds;
    for (std::size_t i = q * quarter; i < (q + 1) * quarter; ++i) ++kinds[plan.events[i].type];
    CHECK(kinds[event_type::created] > 0);
    CHECK(kinds[event_type::updated] > 0);
    if (q > 0) CHECK(kinds[event_type::deleted] > 0);
  }
}

TEST_CASE("all of a user's events go to one connection, in plan order") {
  const event_plan plan = make_plan({5000, 300, 0.1, 100, 7});
  std::size_t total = 0;
  for (std::uint32_t c = 0; c < plan.by_connection.size(); ++c) {
    const auto& queue = plan.by_connection[c];
    total += queue.size();
    for (std::size_t i = 0; i < queue.size(); ++i) {
      CHECK(plan.events[queue[i]].connection == c);
      CHECK(plan.events[queue[i]].user % 7 == c);
      if (i > 0) CHECK(queue[i] > queue[i - 1]);
    }
  }
  CHECK(total == plan.events.size());
}

TEST_CASE("with fewer events than users, every event creates a new user") {
  const event_plan plan = make_plan({100, 1000, 0.5, 1024, 4});
  CHECK(plan.users_touched == 100);
  CHECK(plan.count(event_type::created) == 100);
}

TEST_CASE("ids look like Clerk's and Svix's and never repeat within a run") {
  CHECK(clerk_id("ab12", 7) == "user_ab1200000000000000000000007");
  CHECK(clerk_id("ab12", 7).size() == 32);
  std::set<std::string> ids;
  for (std::uint64_t i = 0; i < 1000; ++i) ids.insert(svix_id("r1", i));
  CHECK(ids.size() == 1000);
}

TEST_CASE("a signed request verifies with the service's verifier and decodes as the planned event") {
  const target_url url = *parse_url("https://127.0.0.1:8443/webhooks/clerk");
  const auto secret = usersync::webhook_secret::parse(secret_text);
  const request_builder builder(url, secret, "t1");
  const std::int64_t now = unix_now();
  for (const event_type type : {event_type::created, event_type::updated, event_type::deleted}) {
    const planned_event e{42, type == event_type::created ? 0u : 3u, type, 0};
    const std::string wire = builder.build(e, 9, now);
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(net::buffer(wire), ec);
    REQUIRE_FALSE(ec);
    REQUIRE(parser.is_done());
    const auto& req = parser.get();
    CHECK(req.target() == "/webhooks/clerk");
    CHECK(req[http::field::host] == "127.0.0.1:8443");
    const usersync::webhook_headers headers{req["svix-id"], req["svix-timestamp"], req["svix-signature"]};
    CHECK(headers.id == svix_id("t1", 9));
    CHECK(usersync::verify_webhook({secret}, headers, req.body(), std::chrono::system_clock::now()) ==
          usersync::verify_result::ok);
    const auto decoded = usersync::decode_clerk_event(req.body());
    REQUIRE(decoded.event);
    CHECK(decoded.event->subject_id == clerk_id("t1", 42));
    if (type != event_type::deleted) {
      REQUIRE(decoded.event->user);
      CHECK(decoded.event->user->updated_at_ms == updated_at_ms(42, e.version));
      CHECK(decoded.event->user->primary_email.has_value());
    } else {
      CHECK(decoded.event->kind == usersync::event_kind::user_deleted);
    }
  }
}

TEST_CASE("only 2xx answers acknowledge an event") {
  CHECK(classify(200, R"({"outcome":"applied"})") == result::applied);
  CHECK(classify(200, R"({"outcome":"duplicate"})") == result::duplicate);
  CHECK(classify(200, R"({"outcome":"stale"})") == result::stale);
  CHECK(classify(503, R"({"error":"database_busy"})") == result::non_2xx);
  CHECK(acknowledged(result::applied));
  CHECK(acknowledged(result::stale));
  CHECK_FALSE(acknowledged(result::non_2xx));
  CHECK_FALSE(acknowledged(result::failed));
  CHECK_FALSE(acknowledged(result::unsent));
}

TEST_CASE("percentiles are nearest-rank over the samples") {
  std::vector<std::int64_t> ns;
  for (std::int64_t i = 100; i >= 1; --i) ns.push_back(i * 1'000'000);  // 1..100 ms, unsorted
  const latency_summary s = summarize(ns);
  CHECK(s.p50_ms == doctest::Approx(50));
  CHECK(s.p90_ms == doctest::Approx(90));
  CHECK(s.p99_ms == doctest::Approx(99));
  CHECK(s.max_ms == doctest::Approx(100));
  std::vector<std::int64_t> none;
  CHECK(summarize(none).max_ms == 0);
}

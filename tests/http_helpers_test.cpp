#include "url.hpp"

#include <doctest/doctest.h>

#include "bearer_auth.hpp"
#include "metrics.hpp"

// Expected values are written out by hand from RFC 3986 and the Prometheus text format.
namespace usersync {

TEST_CASE("percent-decoding follows RFC 3986 and keeps '+' literal") {
  CHECK(percent_decode("ada%40example.com") == "ada@example.com");
  CHECK(percent_decode("a+b%2Bc") == "a+b+c");
  CHECK(percent_decode("%e2%9c%93") == "\xe2\x9c\x93");
  CHECK_FALSE(percent_decode("%"));
  CHECK_FALSE(percent_decode("%4"));
  CHECK_FALSE(percent_decode("%zz"));
}

TEST_CASE("a query string decodes to its first value per key") {
  auto q = parse_query("/v1/users?email=ada%2Btest%40example.com&limit=5&limit=9&flag");
  REQUIRE(q);
  CHECK(q->at("email") == "ada+test@example.com");
  CHECK(q->at("limit") == "5");
  CHECK(q->at("flag").empty());
  CHECK_FALSE(parse_query("/v1/users?email=%zz"));
  CHECK(parse_query("/v1/users")->empty());
}

TEST_CASE("bearer auth accepts configured tokens only, with the Bearer scheme") {
  const bearer_auth auth({"token-one-0123456789", "token-two-0123456789"});
  CHECK(auth.allows("Bearer token-one-0123456789"));
  CHECK(auth.allows("Bearer token-two-0123456789"));
  CHECK_FALSE(auth.allows("Bearer token-one-012345678"));
  CHECK(auth.allows("bearer token-one-0123456789"));  // the scheme is case-insensitive
  CHECK_FALSE(auth.allows("Bearer TOKEN-ONE-0123456789"));  // the token is not
  CHECK_FALSE(auth.allows("token-one-0123456789"));
  CHECK_FALSE(auth.allows("Bearer "));
  CHECK_FALSE(auth.allows(""));
}

TEST_CASE("histograms render cumulative buckets, +Inf, sum and count") {
  histogram h;
  h.observe(0.0002);
  h.observe(0.003);
  h.observe(20);
  std::string out;
  h.render(out, "x", "handler=\"a\"");
  CHECK(out.find("x_bucket{handler=\"a\",le=\"0.0001\"} 0\n") != std::string::npos);
  CHECK(out.find("x_bucket{handler=\"a\",le=\"0.00025\"} 1\n") != std::string::npos);
  CHECK(out.find("x_bucket{handler=\"a\",le=\"0.005\"} 2\n") != std::string::npos);
  CHECK(out.find("x_bucket{handler=\"a\",le=\"10\"} 2\n") != std::string::npos);
  CHECK(out.find("x_bucket{handler=\"a\",le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(out.find("x_count{handler=\"a\"} 3\n") != std::string::npos);
}

TEST_CASE("metric labels come from a bounded set") {
  CHECK(metrics::handler_for("/v1/users/user_1") == "query");
  CHECK(metrics::handler_for("/webhooks/clerk") == "webhook");
  CHECK(metrics::handler_for("/anything/else") == "other");
  CHECK(metrics::event_type_label("user.created") == "user.created");
  CHECK(metrics::event_type_label("User\"Created") == "other");
  CHECK(metrics::event_type_label(std::string(100, 'a')) == "other");
}

}  // namespace usersync

#include "svix_verify.hpp"

#include <doctest/doctest.h>

#include "openssl_cli.hpp"

#include <stdexcept>
#include <string>
#include <vector>

// Expected signatures come from the openssl CLI (tests/support/openssl_cli.*) or from Svix's
// own published tests, never from sign_webhook or verify_webhook.

namespace usersync {
// doctest prints enums as integers; this overload, found by ADL under the name doctest looks
// for, makes failures show the code instead. Internal linkage, so other tests may have one.
[[maybe_unused]] static doctest::String toString(verify_result result) {
  return std::string(to_string(result)).c_str();
}
}  // namespace usersync

namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using usersync::verify_result;
using usersync::webhook_secret;
using usersync::test::openssl_base64;
using usersync::test::openssl_hmac_sha256_base64;

// Raw key bytes, chosen here; the whsec_ text is derived from them with openssl.
const std::string key_a = "\x8a\x01 rotation key A \x00 with NUL"s;
const std::string key_b = "second key for rotation, B \xff"s;
const std::string key_c = "a key nobody configured"s;

const std::string msg_id = "msg_2YhTBGHvzhY0nwqaUbHEbTwKx3P";
constexpr std::int64_t sent_at = 1'700'000'000;
const std::string sent_at_text = "1700000000";
const std::string clerk_body =
    R"({"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"},"object":"event","type":"user.created"})";

std::chrono::system_clock::time_point at(std::int64_t seconds) {
  return std::chrono::system_clock::time_point{std::chrono::seconds{seconds}};
}

webhook_secret secret_for(const std::string& key) {
  return webhook_secret::parse("whsec_" + openssl_base64(key));
}

// "v1,<openssl HMAC>" over "<id>.<timestamp>.<body>", the content the spec says is signed.
std::string openssl_signature(const std::string& key, const std::string& id,
                              const std::string& timestamp, const std::string& body) {
  return "v1," + openssl_hmac_sha256_base64(key, id + "." + timestamp + "." + body);
}

verify_result verify(const std::vector<webhook_secret>& secrets, const std::string& id,
                     const std::string& timestamp, const std::string& signature,
                     const std::string& body, std::chrono::system_clock::time_point now,
                     std::chrono::seconds tolerance = usersync::default_tolerance) {
  return usersync::verify_webhook(secrets, {id, timestamp, signature}, body, now, tolerance);
}

// verify() with secret A, the default message, and the clock at the send time.
verify_result verify_a(const std::string& signature, const std::string& body = clerk_body) {
  return verify({secret_for(key_a)}, msg_id, sent_at_text, signature, body, at(sent_at));
}

std::string good_signature_a() {
  return openssl_signature(key_a, msg_id, sent_at_text, clerk_body);
}

// The exception text parse() throws, or "" when it does not throw invalid_argument.
std::string parse_error(const std::string& text) {
  try {
    (void)webhook_secret::parse(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Svix's published test vector signs and verifies") {
  // From svix/svix-webhooks, go/webhook_test.go, TestWebhookSign
  // (commit 048f87ed05f4ed7878c7c56fd4f2838409a2a9c8).
  const auto secret = webhook_secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  const std::string body = R"({"test": 2432232314})";
  const std::string expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  CHECK(usersync::sign_webhook(secret, id, 1614265330, body) == expected);
  CHECK(verify({secret}, id, "1614265330", expected, body, at(1614265330)) == verify_result::ok);
}

TEST_CASE("Svix's published invalid and partial signatures are refused") {
  // Same source as above: the "invalid signature is invalid" and "partial signature is
  // invalid" cases, against a freshly signed message.
  CHECK(verify_a("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=") ==
        verify_result::no_matching_signature);
  CHECK(verify_a("v1,") == verify_result::no_matching_signature);
}

TEST_CASE("a signature computed by openssl verifies") {
  CHECK(verify_a(good_signature_a()) == verify_result::ok);
}

TEST_CASE("the body is verified as raw bytes: NUL, CRLF and invalid UTF-8 included") {
  const std::string body = "{\"a\":\"\x00\xff\xfe\"}\r\n"s;
  CHECK(verify_a(openssl_signature(key_a, msg_id, sent_at_text, body), body) ==
        verify_result::ok);
  const std::string empty_body;
  CHECK(verify_a(openssl_signature(key_a, msg_id, sent_at_text, empty_body), empty_body) ==
        verify_result::ok);
}

TEST_CASE("one changed body byte is refused") {
  const auto signature = good_signature_a();
  for (const std::size_t pos : {std::size_t{0}, clerk_body.size() / 2, clerk_body.size() - 1}) {
    CAPTURE(pos);
    std::string tampered = clerk_body;
    tampered[pos] = static_cast<char>(tampered[pos] ^ 0x01);
    CHECK(verify_a(signature, tampered) == verify_result::no_matching_signature);
  }
  CHECK(verify_a(signature, clerk_body + "\n") == verify_result::no_matching_signature);
  CHECK(verify_a(signature, clerk_body.substr(1)) == verify_result::no_matching_signature);
}

TEST_CASE("the signature covers the id and the timestamp") {
  const auto signature = good_signature_a();
  const std::vector secrets{secret_for(key_a)};
  CHECK(verify(secrets, msg_id + "x", sent_at_text, signature, clerk_body, at(sent_at)) ==
        verify_result::no_matching_signature);
  CHECK(verify(secrets, msg_id, "1700000001", signature, clerk_body, at(sent_at)) ==
        verify_result::no_matching_signature);
}

TEST_CASE("a timestamp exactly 300 s old passes") {
  const std::vector secrets{secret_for(key_a)};
  const auto signature = good_signature_a();
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body, at(sent_at) + 300s) ==
        verify_result::ok);
  // Now is floored to whole seconds, so 300.999 s counts as 300 s.
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body,
               at(sent_at) + 300s + 999ms) == verify_result::ok);
}

TEST_CASE("301 s old is refused") {
  CHECK(verify({secret_for(key_a)}, msg_id, sent_at_text, good_signature_a(), clerk_body,
               at(sent_at) + 301s) == verify_result::timestamp_too_old);
}

TEST_CASE("a timestamp exactly 300 s in the future passes") {
  CHECK(verify({secret_for(key_a)}, msg_id, sent_at_text, good_signature_a(), clerk_body,
               at(sent_at) - 300s) == verify_result::ok);
}

TEST_CASE("301 s in the future is refused") {
  const std::vector secrets{secret_for(key_a)};
  const auto signature = good_signature_a();
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body, at(sent_at) - 301s) ==
        verify_result::timestamp_too_new);
  // Flooring now: 300.5 s before the timestamp is second sent_at - 301.
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body,
               at(sent_at) - 300s - 500ms) == verify_result::timestamp_too_new);
}

TEST_CASE("a custom tolerance is honoured") {
  const std::vector secrets{secret_for(key_a)};
  const auto signature = good_signature_a();
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body, at(sent_at) + 10s, 10s) ==
        verify_result::ok);
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body, at(sent_at) + 11s, 10s) ==
        verify_result::timestamp_too_old);
  CHECK(verify(secrets, msg_id, sent_at_text, signature, clerk_body, at(sent_at) - 11s, 10s) ==
        verify_result::timestamp_too_new);
}

TEST_CASE("extreme timestamps and clocks are range-checked without overflow") {
  const std::vector secrets{secret_for(key_a)};
  const auto signature = good_signature_a();
  const auto max_int64 = "9223372036854775807"s;
  CHECK(verify(secrets, msg_id, max_int64, signature, clerk_body, at(sent_at)) ==
        verify_result::timestamp_too_new);
  CHECK(verify(secrets, msg_id, "0", signature, clerk_body, at(sent_at)) ==
        verify_result::timestamp_too_old);
  CHECK(verify(secrets, msg_id, max_int64, signature, clerk_body,
               std::chrono::system_clock::time_point::min()) ==
        verify_result::timestamp_too_new);
  CHECK(verify(secrets, msg_id, "0", signature, clerk_body,
               std::chrono::system_clock::time_point::max()) ==
        verify_result::timestamp_too_old);
}

TEST_CASE("non-decimal timestamps are refused") {
  const auto signature = good_signature_a();
  for (const std::string timestamp :
       {"1e9", "+123", "-123", " 123", "123 ", "12.5", "0x10", "1_700_000_000", "１２３",
        "123456789012345678901234567890", "99999999999999999999", "9223372036854775808",
        "1700000000\n"}) {
    CAPTURE(timestamp);
    CHECK(verify({secret_for(key_a)}, msg_id, timestamp, signature, clerk_body, at(sent_at)) ==
          verify_result::invalid_timestamp);
  }
  // An empty timestamp is refused too, as an absent header.
  CHECK(verify({secret_for(key_a)}, msg_id, "", signature, clerk_body, at(sent_at)) ==
        verify_result::missing_headers);
}

TEST_CASE("missing headers are refused") {
  const std::vector secrets{secret_for(key_a)};
  const auto signature = good_signature_a();
  CHECK(verify(secrets, "", sent_at_text, signature, clerk_body, at(sent_at)) ==
        verify_result::missing_headers);
  CHECK(verify(secrets, msg_id, "", signature, clerk_body, at(sent_at)) ==
        verify_result::missing_headers);
  CHECK(verify(secrets, msg_id, sent_at_text, "", clerk_body, at(sent_at)) ==
        verify_result::missing_headers);
  CHECK(verify(secrets, "", "", "", clerk_body, at(sent_at)) == verify_result::missing_headers);
}

TEST_CASE("headers are checked first, then the timestamp, then the signature") {
  const std::vector secrets{secret_for(key_a)};
  CHECK(verify(secrets, "", "not a time", "v1,bad", clerk_body, at(sent_at)) ==
        verify_result::missing_headers);
  CHECK(verify(secrets, msg_id, "not a time", "v1,bad", clerk_body, at(sent_at)) ==
        verify_result::invalid_timestamp);
  CHECK(verify(secrets, msg_id, sent_at_text, "v1,bad", clerk_body, at(sent_at) + 1h) ==
        verify_result::timestamp_too_old);
  // A valid signature does not rescue a stale timestamp (replay protection).
  CHECK(verify(secrets, msg_id, sent_at_text, good_signature_a(), clerk_body,
               at(sent_at) + 1h) == verify_result::timestamp_too_old);
}

TEST_CASE("any of several space-separated signatures may match") {
  const auto good = good_signature_a();
  const auto other = openssl_signature(key_c, msg_id, sent_at_text, clerk_body);
  CHECK(verify_a(good + " " + other) == verify_result::ok);
  CHECK(verify_a(other + " " + good) == verify_result::ok);
  CHECK(verify_a(other + " " + good + " " + other) == verify_result::ok);
  CHECK(verify_a(other + "  " + good) == verify_result::ok);
  CHECK(verify_a(other + " " + other) == verify_result::no_matching_signature);
}

TEST_CASE("unknown versions such as v1a are skipped") {
  const auto good = good_signature_a();
  const auto bare = good.substr(3);  // without "v1,"
  CHECK(verify_a("v1a," + bare) == verify_result::no_matching_signature);
  CHECK(verify_a("v2," + bare) == verify_result::no_matching_signature);
  CHECK(verify_a("V1," + bare) == verify_result::no_matching_signature);
  CHECK(verify_a("v1a," + bare + " v2," + bare + " " + good) == verify_result::ok);
}

TEST_CASE("an entry without a comma is skipped") {
  const auto good = good_signature_a();
  const auto bare = good.substr(3);
  CHECK(verify_a(bare) == verify_result::no_matching_signature);
  CHECK(verify_a("v1") == verify_result::no_matching_signature);
  CHECK(verify_a("v1" + bare) == verify_result::no_matching_signature);
  CHECK(verify_a("garbage " + good) == verify_result::ok);
}

TEST_CASE("a signature from another secret is refused") {
  CHECK(verify_a(openssl_signature(key_c, msg_id, sent_at_text, clerk_body)) ==
        verify_result::no_matching_signature);
}

TEST_CASE("a truncated or extended signature is refused") {
  const auto good = good_signature_a();
  CHECK(verify_a(good.substr(0, good.size() - 1)) == verify_result::no_matching_signature);
  CHECK(verify_a(good.substr(0, good.size() - 4)) == verify_result::no_matching_signature);
  CHECK(verify_a(good.substr(0, 4)) == verify_result::no_matching_signature);
  CHECK(verify_a(good + "A") == verify_result::no_matching_signature);
  CHECK(verify_a(good + ",extra") == verify_result::no_matching_signature);
}

TEST_CASE("several secrets: a message signed with either verifies (rotation)") {
  const std::vector secrets{secret_for(key_a), secret_for(key_b)};
  for (const auto& key : {key_a, key_b}) {
    CHECK(verify(secrets, msg_id, sent_at_text,
                 openssl_signature(key, msg_id, sent_at_text, clerk_body), clerk_body,
                 at(sent_at)) == verify_result::ok);
  }
  CHECK(verify(secrets, msg_id, sent_at_text,
               openssl_signature(key_c, msg_id, sent_at_text, clerk_body), clerk_body,
               at(sent_at)) == verify_result::no_matching_signature);
}

TEST_CASE("with no secrets configured nothing verifies") {
  CHECK(verify({}, msg_id, sent_at_text, good_signature_a(), clerk_body, at(sent_at)) ==
        verify_result::no_matching_signature);
}

TEST_CASE("the whsec_ prefix is optional") {
  const auto text = openssl_base64(key_a);
  CHECK(webhook_secret::parse("whsec_" + text).key() == key_a);
  CHECK(webhook_secret::parse(text).key() == key_a);
  CHECK(verify({webhook_secret::parse(text)}, msg_id, sent_at_text, good_signature_a(),
               clerk_body, at(sent_at)) == verify_result::ok);
}

TEST_CASE("a secret that is not base64 is refused without echoing it") {
  const std::vector<std::string> secret_texts{
      "hunter2-SECRET-value!",              // '-' and '!' are outside the alphabet
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",    // 31 characters: not whole quanta
      "MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw",  // embedded space
      "MfKQ9r8G_KYqrTwjUPD8ILPZIo2LaLaS",   // URL-safe alphabet is not standard base64
  };
  for (const auto& body : secret_texts) {
    for (const auto& text : {"whsec_" + body, body}) {
      CAPTURE(text);
      const auto message = parse_error(text);
      CHECK(message.find("base64") != std::string::npos);
      CHECK(message.find(body) == std::string::npos);
      CHECK(message.find(body.substr(0, 8)) == std::string::npos);
    }
  }
}

TEST_CASE("an empty secret is refused") {
  for (const std::string text : {"", "whsec_"}) {
    CAPTURE(text);
    CHECK(parse_error(text).find("empty") != std::string::npos);
  }
}

TEST_CASE("sign_webhook output matches openssl") {
  const auto secret = secret_for(key_a);
  for (const auto& body : {clerk_body, std::string{}, "\x00\xff\r\n"s}) {
    CHECK(usersync::sign_webhook(secret, msg_id, sent_at, body) ==
          openssl_signature(key_a, msg_id, sent_at_text, body));
  }
  CHECK(usersync::sign_webhook(secret, msg_id, 0, clerk_body) ==
        openssl_signature(key_a, msg_id, "0", clerk_body));
}

TEST_CASE("to_string gives a stable snake_case code for each result") {
  CHECK(usersync::to_string(verify_result::ok) == "ok");
  CHECK(usersync::to_string(verify_result::missing_headers) == "missing_headers");
  CHECK(usersync::to_string(verify_result::invalid_timestamp) == "invalid_timestamp");
  CHECK(usersync::to_string(verify_result::timestamp_too_old) == "timestamp_too_old");
  CHECK(usersync::to_string(verify_result::timestamp_too_new) == "timestamp_too_new");
  CHECK(usersync::to_string(verify_result::no_matching_signature) == "no_matching_signature");
}

#include "config.hpp"

#include <doctest/doctest.h>

#include <fstream>

#include "temp_dir.hpp"

namespace usersync {
namespace {

// A valid secret: "whsec_" + base64 of 24 bytes, made with `openssl rand -base64 24`.
constexpr const char* secret_a = "whsec_3pZbJqjGfWm7x0wH2CXa3GZFi1Ls6Stz";
constexpr const char* secret_b = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const environment home_only = {{"HOME", "/home/ops"}};

config serve_config(const std::vector<std::string>& args, const environment& env = home_only) {
  return parse_command("serve", args, env).cfg;
}

}  // namespace

TEST_CASE("defaults are the documented ones") {
  const config cfg = serve_config({});
  CHECK(cfg.listen.address == "0.0.0.0");
  CHECK(cfg.listen.port == 8443);
  CHECK_FALSE(cfg.listen.plain_http);
  CHECK(cfg.limits.body_limit == 1024 * 1024);
  CHECK(cfg.webhook.tolerance == std::chrono::seconds(300));
  CHECK(cfg.storage.data_dir == "/home/ops/.local/share/usersync");
}

TEST_CASE("the data directory comes from STATE_DIRECTORY, then XDG_DATA_HOME, then HOME") {
  CHECK(default_data_dir({{"HOME", "/h"}}) == "/h/.local/share/usersync");
  CHECK(default_data_dir({{"HOME", "/h"}, {"XDG_DATA_HOME", "/x"}}) == "/x/usersync");
  CHECK(default_data_dir({{"HOME", "/h"}, {"XDG_DATA_HOME", "/x"},
                          {"STATE_DIRECTORY", "/var/lib/usersync:/var/lib/other"}}) ==
        "/var/lib/usersync");
  CHECK(serve_config({"--data-dir", "/srv/u"}, {{"STATE_DIRECTORY", "/s"}}).storage.data_dir == "/srv/u");
  CHECK_THROWS_AS(default_data_dir({}), config_error);
}

TEST_CASE("flags win over USERSYNC_* variables, which win over the config file") {
  test::temp_dir dir;
  const auto file = dir.path() / "usersync.conf";
  std::ofstream(file) << "listen = 127.0.0.1:1000\nthreads = 3\nmax-body-bytes = 4096\n";
  const environment env = {{"HOME", "/h"},
                           {"USERSYNC_CONFIG", file.string()},
                           {"USERSYNC_LISTEN", "127.0.0.1:2000"},
                           {"USERSYNC_THREADS", "5"}};
  const config cfg = serve_config({"--listen", "127.0.0.1:3000"}, env);
  CHECK(cfg.listen.port == 3000);        // flag
  CHECK(cfg.runtime.threads == 5);       // env over file
  CHECK(cfg.limits.body_limit == 4096);  // file over default
}

TEST_CASE("an out-of-range value names the flag and its environment variable") {
  CHECK_THROWS_WITH_AS(serve_config({"--max-body-bytes", "5"}),
                       doctest::Contains("--max-body-bytes (USERSYNC_MAX_BODY_BYTES)"), config_error);
  CHECK_THROWS_WITH_AS(serve_config({"--threads", "0"}), doctest::Contains("between 1 and 256"),
                       config_error);
}

TEST_CASE("an unknown flag or config key is refused with a pointer to --help") {
  CHECK_THROWS_WITH_AS(serve_config({"--no-such-flag"}), doctest::Contains("--help"), config_error);
  test::temp_dir dir;
  const auto file = dir.path() / "bad.conf";
  std::ofstream(file) << "lisen = 127.0.0.1:1\n";
  const std::string path = file.string();
  CHECK_THROWS_WITH_AS(serve_config({"--config", path}), doctest::Contains(path.c_str()),
                       config_error);
}

TEST_CASE("listen takes IPv4 and bracketed IPv6 addresses and refuses names") {
  CHECK(serve_config({"--listen", "[::1]:9443"}).listen.address == "::1");
  CHECK(serve_config({"--listen", "127.0.0.1:0"}).listen.port == 0);
  CHECK_THROWS_AS(serve_config({"--listen", "localhost:8443"}), config_error);
  CHECK_THROWS_AS(serve_config({"--listen", "127.0.0.1:99999"}), config_error);
  CHECK_THROWS_AS(serve_config({"--listen", "127.0.0.1"}), config_error);
}

TEST_CASE("several secrets may come from flags, one variable or a file") {
  CHECK(serve_config({"--webhook-secret", secret_a, "--webhook-secret", secret_b}).webhook.secrets.size() == 2);
  const environment env = {{"HOME", "/h"},
                           {"USERSYNC_WEBHOOK_SECRET", std::string(secret_a) + ", " + secret_b}};
  CHECK(serve_config({}, env).webhook.secrets == std::vector<std::string>{secret_a, secret_b});
  test::temp_dir dir;
  const auto file = dir.path() / "secrets";
  std::ofstream(file) << "# current\n" << secret_a << "\n" << secret_b << "\n";
  CHECK(serve_config({"--webhook-secret-file", file.string()}).webhook.secrets.size() == 2);
}

TEST_CASE("a malformed secret is refused without echoing it") {
  const std::string bad = "whsec_not*base64*at*all";
  try {
    serve_config({"--webhook-secret", bad});
    FAIL("expected config_error");
  } catch (const config_error& e) {
    const std::string message = e.what();
    CHECK(message.find("webhook secret #1") != std::string::npos);
    CHECK(message.find("not*base64") == std::string::npos);
  }
}

TEST_CASE("--tls-cert and --tls-key go together") {
  CHECK_THROWS_WITH_AS(serve_config({"--tls-cert", "/etc/cert.pem"}), doctest::Contains("--tls-key"),
                       config_error);
}

TEST_CASE("USERSYNC_PLAIN_HTTP turns on plain HTTP") {
  CHECK(serve_config({}, {{"HOME", "/h"}, {"USERSYNC_PLAIN_HTTP", "true"}}).listen.plain_http);
}

}  // namespace usersync

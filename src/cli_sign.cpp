#include "cli_sign.hpp"

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "base64.hpp"
#include "svix_verify.hpp"

namespace usersync {
namespace {

std::string read_body(const std::filesystem::path& file) {
  std::stringstream body;
  if (file == "-") {
    body << std::cin.rdbuf();
    return body.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw config_error("cannot read " + file.string() + ": check the path");
  body << in.rdbuf();
  return body.str();
}

// The configured secret, else the dev secret `serve` made; sign never creates one.
std::string signing_secret(const config& cfg) {
  if (!cfg.webhook.secrets.empty()) return cfg.webhook.secrets.front();
  const auto dev = cfg.storage.data_dir / "dev-webhook-secret";
  std::ifstream in(dev);
  std::string secret;
  if (!in || !std::getline(in, secret) || secret.empty()) {
    throw config_error("no webhook secret to sign with: pass --webhook-secret-file, or start "
                       "`usersync serve` once so it makes the dev secret " + dev.string());
  }
  return secret;
}

std::string new_message_id() {
  static constexpr char digits[] = "0123456789abcdef";
  std::string id = "msg_";
  for (char c : random_bytes(14)) {
    const auto byte = static_cast<unsigned char>(c);
    id += digits[byte >> 4];
    id += digits[byte & 0xf];
  }
  return id;
}

}  // namespace

int sign_command(const config& cfg) {
  const webhook_secret secret = webhook_secret::parse(signing_secret(cfg));
  const std::string body = read_body(cfg.sign.body_file);
  const std::string id = cfg.sign.id.empty() ? new_message_id() : cfg.sign.id;
  const std::int64_t timestamp =
      cfg.sign.timestamp.value_or(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
  std::cout << "svix-id: " << id << "\n"
            << "svix-timestamp: " << timestamp << "\n"
            << "svix-signature: " << sign_webhook(secret, id, timestamp, body) << "\n";
  return 0;
}

}  // namespace usersync

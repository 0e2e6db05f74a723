#include "credentials.hpp"

#include <boost/asio/ssl/context.hpp>
#include <spdlog/spdlog.h>

#include "bearer_auth.hpp"
#include "data_dir.hpp"
#include "tls.hpp"

namespace usersync {

std::vector<webhook_secret> load_webhook_secrets(const config& cfg) {
  std::vector<std::string> texts = cfg.webhook.secrets;
  if (texts.empty()) {
    const dev_credential dev = load_or_create_dev_secret(cfg.storage.data_dir);
    spdlog::warn("no webhook secret configured: using the dev secret in {} ({}); for production "
                 "set --webhook-secret-file to the provider's signing secret",
                 dev.file.string(), dev.created ? "created now" : "made on an earlier run");
    texts.push_back(dev.value);
  }
  std::vector<webhook_secret> secrets;
  for (const auto& text : texts) secrets.push_back(webhook_secret::parse(text));
  return secrets;
}

std::shared_ptr<const bearer_auth> load_query_auth(const config& cfg) {
  if (!cfg.query.tokens.empty()) return std::make_shared<const bearer_auth>(cfg.query.tokens);
  const dev_credential dev = load_or_create_dev_query_token(cfg.storage.data_dir);
  spdlog::warn("no query token configured: the /v1 API takes the dev token in {} ({}); for "
               "production set --query-token-file", dev.file.string(),
               dev.created ? "created now" : "made on an earlier run");
  return std::make_shared<const bearer_auth>(std::vector<std::string>{dev.value});
}

std::shared_ptr<boost::asio::ssl::context> load_tls(const config& cfg) {
  if (cfg.listen.plain_http) {
    spdlog::warn("serving plain HTTP (--plain-http): only behind a TLS-terminating proxy");
    return nullptr;
  }
  if (!cfg.listen.tls_cert.empty()) return make_tls_context(cfg.listen.tls_cert, cfg.listen.tls_key);
  const dev_certificate dev = load_or_create_dev_certificate(cfg.storage.data_dir);
  spdlog::warn("no TLS certificate configured: using the self-signed dev certificate {} "
               "(key {}{}); for production set --tls-cert and --tls-key",
               dev.cert.string(), dev.key.string(), dev.created ? ", created now" : "");
  return make_tls_context(dev.cert, dev.key);
}

}  // namespace usersync

#pragma once
// What `serve` authenticates with: webhook secrets, query tokens and the TLS context. Loaded
// at start and again on SIGHUP; each falls back to a dev credential in the data directory
// when none is configured.
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "svix_verify.hpp"

namespace boost::asio::ssl { class context; }

namespace usersync {

class bearer_auth;

// Throws (config_error or std::runtime_error) naming the file and the problem.
std::vector<webhook_secret> load_webhook_secrets(const config& cfg);
std::shared_ptr<const bearer_auth> load_query_auth(const config& cfg);
// Null with --plain-http.
std::shared_ptr<boost::asio::ssl::context> load_tls(const config& cfg);

}  // namespace usersync

#pragma once
// Bearer-token authentication for the query API. Tokens are kept as SHA-256 digests and
// compared in constant time, so neither their content nor their length leaks through timing.
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace usersync {

class bearer_auth {
 public:
  explicit bearer_auth(const std::vector<std::string>& tokens);

  // True when `authorization` is "Bearer <token>" for one of the configured tokens.
  bool allows(std::string_view authorization) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace usersync

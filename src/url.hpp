#pragma once
// Pure helpers for request targets: percent-decoding and query strings.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace usersync {

// RFC 3986 percent-decoding; nullopt for a malformed escape. '+' stays '+' (this is not
// form encoding, and email addresses contain '+').
std::optional<std::string> percent_decode(std::string_view text);

// The decoded key=value pairs after '?'; nullopt when an escape is malformed. A repeated key
// keeps its first value.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view target);

}  // namespace usersync

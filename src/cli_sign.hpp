#pragma once
#include "config.hpp"

namespace usersync {

// `usersync sign FILE`: prints the svix-id, svix-timestamp and svix-signature header lines
// for FILE's bytes, signed with the first configured webhook secret (else the dev secret),
// so scripts can post test events without reimplementing the signature.
int sign_command(const config& cfg);

}  // namespace usersync

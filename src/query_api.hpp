#pragma once
// GET /v1/...: the read-only JSON API for internal services. Runs on HTTP threads with a
// reader from the pool; never touches the writer. Every route needs a bearer token.
#include "router.hpp"
#include "swappable.hpp"

namespace usersync {

class bearer_auth;
class reader_pool;

struct query_limits {
  int default_page = 100;
  int max_page = 1000;
};

// Adds the /v1 routes to `routes`; `auth` and `readers` must outlive the router. `auth` is
// read per request, so a SIGHUP that replaces the tokens applies to the next one.
void add_query_routes(router& routes, const swappable<const bearer_auth>& auth, reader_pool& readers,
                      const query_limits& limits = {});

}  // namespace usersync

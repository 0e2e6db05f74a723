#include "signed_requests.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <sstream>
#include <thread>

#include "clerk_payload.hpp"

namespace loadgen {
namespace http = boost::beast::http;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

request_builder::request_builder(const target_url& url, const usersync::webhook_secret& secret,
                                 std::string run_id)
    : path_(url.path), host_(url.host_header()), secret_(secret), run_id_(std::move(run_id)) {}

std::string request_builder::build(const planned_event& e, std::uint64_t index,
                                   std::int64_t timestamp) const {
  const std::string id = svix_id(run_id_, index);
  http::request<http::string_body> req{http::verb::post, path_, 11};
  req.set(http::field::host, host_);
  req.set(http::field::user_agent, "Svix-Webhooks/1.62 (usersync-loadgen)");
  req.set(http::field::content_type, "application/json");
  req.set("svix-id", id);
  req.set("svix-timestamp", std::to_string(timestamp));
  req.body() = clerk_body(run_id_, e);
  req.set("svix-signature", usersync::sign_webhook(secret_, id, timestamp, req.body()));
  req.keep_alive(true);
  req.prepare_payload();
  std::ostringstream out;
  out << req;
  return out.str();
}

signed_batch sign_all(const request_builder& builder, const event_plan& plan, unsigned threads) {
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t now = unix_now();
  const std::size_t n = plan.events.size();
  signed_batch batch;
  batch.requests.resize(n);
  batch.signed_at.assign(n, now);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::size_t i = t; i < n; i += threads) batch.requests[i] = builder.build(plan.events[i], i, now);
    });
  }
  for (auto& w : workers) w.join();
  for (const auto& r : batch.requests) batch.body_bytes += r.size() - r.find("\r\n\r\n") - 4;
  batch.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return batch;
}

}  // namespace loadgen

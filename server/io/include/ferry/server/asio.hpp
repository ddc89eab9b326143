// The one place Asio is included, with the completion token every coroutine here uses:
// `co_await op(..., use_tuple)` yields (error_code, result...) instead of throwing.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

namespace ferry::server {

inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

} // namespace ferry::server

// The Prometheus text exposition format (version 0.0.4): families with HELP and TYPE, then
// their samples, label values escaped. Builds one scrape's body.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ferry::admin {

using label = std::pair<std::string_view, std::string_view>;

class exposition {
public:
    /// Starts a family: `type` is counter, gauge or info-style gauge. Names follow Prometheus
    /// conventions (counters end in _total).
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value);
    void sample(std::string_view name, std::initializer_list<label> labels, std::int64_t value);
    void sample(std::string_view name, std::initializer_list<label> labels, double value);
    /// The body so far; the exposition is empty afterwards.
    std::string take() { return std::exchange(out_, {}); }

private:
    void start(std::string_view name, std::initializer_list<label> labels);
    std::string out_;
};

/// A label value escaped as the format requires (backslash, double quote, newline).
std::string escape_label(std::string_view value);

} // namespace ferry::admin

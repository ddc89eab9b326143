// ferry's command line: --config FILE runs the server, --check-config FILE validates a file,
// --help, --version. Exit codes: 0 ok, 1 start-up failure, 2 bad configuration or usage.
#include "ferry/server/config.hpp"
#include "ferry/server/log.hpp"
#include "ferry/server/server.hpp"

#include <fmt/format.h>

#include <csignal>
#include <sys/resource.h>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view usage = R"(Usage: ferry [--config FILE]
       ferry --check-config FILE
       ferry --help | --version

ferry is a STUN/TURN server. It reads one YAML configuration file; see conf/ferry.yaml for
every key and its default. Without --config it runs on the built-in defaults (STUN on port
3478 over UDP and TCP, all IPv4 and IPv6 addresses).

Options:
  -c, --config FILE        run with this configuration
      --check-config FILE  validate the file, print the outcome, and exit (0 valid, 2 not)
  -h, --help               show this help
  -V, --version            print the version
)";

int fail_usage(const std::string& msg) {
    fmt::print(stderr, "ferry: {}\n{}", msg, usage);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            fmt::print("{}", usage);
            return 0;
        }
        if (arg == "-V" || arg == "--version") {
            fmt::print("ferry {}\n", FERRY_VERSION);
            return 0;
        }
        if (arg == "-c" || arg == "--config" || arg == "--check-config") {
            if (i + 1 >= argc) return fail_usage(fmt::format("{} needs a file name", arg));
            config_path = argv[++i];
            check_only = arg == "--check-config";
            continue;
        }
        return fail_usage(fmt::format("unknown argument '{}'", arg));
    }

    ferry::server::config cfg;
    try {
        cfg = config_path.empty() ? ferry::server::parse_config("", "<defaults>")
                                  : ferry::server::load_config(config_path);
    } catch (const ferry::server::config_error& e) {
        fmt::print(stderr, "ferry: {}\n", e.what());
        return 2;
    }
    if (check_only) {
        fmt::print("{}: configuration is valid\n", config_path);
        return 0;
    }

    std::signal(SIGPIPE, SIG_IGN);
    // Every allocation holds a relay socket: take all the descriptors the system allows.
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &files);
    }
    ferry::server::log::set_level(cfg.log.level);
    ferry::server::log::set_format(cfg.log.format);
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && cfg.turn.enabled() && files.rlim_cur < 65536)
        ferry::server::log::warn("only {} file descriptors: at most about that many allocations "
                                 "(raise LimitNOFILE / ulimit -n)", files.rlim_cur);
    try {
        return ferry::server::run(std::move(cfg), config_path);
    } catch (const std::exception& e) {
        ferry::server::log::error("cannot start: {}", e.what());
        return 1;
    }
}

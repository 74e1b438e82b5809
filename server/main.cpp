// reactord: the reactor server, configured by one JSON file.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "builtin.hpp"
#include "config.hpp"
#include "daemon.hpp"
#include "plugin_loader.hpp"
#include "reactor/log.hpp"
#include "reactor/protocol_registry.hpp"
#include "reactor/version.hpp"

namespace {

using reactord::kExitConfig;

void print_usage(std::FILE* to) {
    std::fprintf(
        to,
        "usage: reactord [--config FILE | --check-config FILE] [--console]\n"
        "       reactord --print-default | --help | --version\n"
        "\n"
        "  --config FILE        run with this JSON configuration (default: the embedded demo)\n"
        "  --check-config FILE  validate the configuration without binding, print the problem\n"
        "                       with its JSON path if any, exit 0 or 2\n"
        "  --print-default      print the embedded default configuration\n"
        "  --console            also read admin commands from stdin\n"
        "  --help, --version\n"
        "\n"
        "exit status:\n"
        "  0  stopped by SIGINT or SIGTERM after draining; --check-config found no problem\n"
        "  1  could not start: a listener could not listen (the message names it)\n"
        "  2  bad arguments, or a configuration that cannot be read or is invalid\n"
        "  3  a second SIGINT or SIGTERM ended the drain early\n"
        "SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored; SIGPIPE is ignored.\n");
}

// Reads a whole file; false with errno set (EISDIR for a directory).
bool read_file(const std::string& path, std::string& out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    out.clear();
    char chunk[65536];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n > 0) {
            out.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            const int err = errno;
            ::close(fd);
            errno = err;
            return false;
        }
    }
    ::close(fd);
    return true;
}

int usage_error(const std::string& problem) {
    std::fprintf(stderr, "reactord: %s\n", problem.c_str());
    print_usage(stderr);
    return kExitConfig;
}

}  // namespace

int main(int argc, char** argv) {
    // Until the daemon handles them (it logs them), signals whose default action ends the process
    // are ignored; a write to a closed connection must never raise SIGPIPE.
    for (const int signo : {SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE}) std::signal(signo, SIG_IGN);

    std::string config_path;
    bool check_only = false;
    bool console = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            print_usage(stdout);
            return 0;
        }
        if (arg == "--version") {
            std::printf("reactord %s\n", reactor::version());
            return 0;
        }
        if (arg == "--print-default") {
            std::printf("%s\n", reactord::default_config_text().c_str());
            return 0;
        }
        if (arg == "--console") {
            console = true;
        } else if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
            if (!config_path.empty()) {
                return usage_error("give one of --config and --check-config, once");
            }
            config_path = argv[++i];
            if (config_path.empty()) return usage_error("empty file name after " + arg);
            check_only = arg == "--check-config";
        } else {
            return usage_error("unknown or incomplete argument '" + arg + "'");
        }
    }

    std::string text = reactord::default_config_text();
    if (!config_path.empty() && !read_file(config_path, text)) {
        std::fprintf(stderr, "reactord: cannot read %s: %s\n", config_path.c_str(),
                     std::strerror(errno));
        return kExitConfig;
    }
    const std::string source = config_path.empty() ? "default config" : config_path;

    reactord::Config config;
    reactord::Plan plan;
    try {
        config = reactord::parse_config(text);
        reactor::set_log_level(config.log_level);
        reactor::ProtocolRegistry registry;
        reactor::protocols::register_builtin(registry);
        for (std::size_t i = 0; i < config.plugins.size(); ++i) {
            try {
                reactor::protocols::load_protocol_plugin(config.plugins[i], registry);
            } catch (const std::exception& e) {
                throw reactor::ConfigError("plugins[" + std::to_string(i) + "]", e.what());
            }
        }
        plan = reactord::make_plan(config, registry);
        reactord::check_host(config);
    } catch (const reactor::ConfigError& e) {
        std::fprintf(stderr, "reactord: %s: %s\n", source.c_str(), e.describe().c_str());
        return kExitConfig;
    }
    if (check_only) {
        std::printf("%s: OK\n", source.c_str());
        return 0;
    }

    try {
        reactord::Daemon daemon(config, std::move(plan), config_path);
        return daemon.run(console);
    } catch (const reactord::StartError& e) {
        std::fprintf(stderr, "reactord: %s: %s\n", source.c_str(), e.what());
        return reactord::kExitStart;
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "reactord: %s: %s\n", source.c_str(), e.what());
        return reactord::kExitStart;
    }
}

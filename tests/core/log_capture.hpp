#pragma once

// Sends the process's log to a temporary file, at debug level, for the life of the object, so a
// test can read what a connection logged. One at a time.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "reactor/log.hpp"

namespace test {

class LogCapture {
  public:
    LogCapture() : file_(std::tmpfile()), level_(reactor::log_level()) {
        if (file_ == nullptr) throw std::runtime_error("tmpfile failed");
        reactor::flush_log(std::chrono::seconds(5));
        previous_fd_ = reactor::set_log_fd(::fileno(file_));
        reactor::set_log_level(reactor::LogLevel::debug);
    }
    ~LogCapture() {
        reactor::flush_log(std::chrono::seconds(5));
        reactor::set_log_level(level_);
        reactor::set_log_fd(previous_fd_);
        std::fclose(file_);
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    // Everything logged so far, once the log's writer has written it.
    std::string text() {
        reactor::flush_log(std::chrono::seconds(5));
        std::string out;
        char chunk[4096];
        off_t at = 0;
        for (ssize_t n; (n = ::pread(::fileno(file_), chunk, sizeof chunk, at)) > 0; at += n) {
            out.append(chunk, static_cast<std::size_t>(n));
        }
        return out;
    }

  private:
    std::FILE* file_;
    reactor::LogLevel level_;
    int previous_fd_ = -1;
};

}  // namespace test

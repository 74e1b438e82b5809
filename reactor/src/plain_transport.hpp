#pragma once

// The plain TCP (and Unix stream) transport: the socket's own reads and writes. Internal header.
//
// A connection without a transport factory embeds one of these and calls it through its own type,
// so the calls are direct (PlainTransport is final) and the request/reply path costs no more than
// the read() and send() it makes.

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include "reactor/transport.hpp"

namespace reactor {

static_assert(sizeof(IoSlice) == sizeof(iovec) &&
                  offsetof(IoSlice, data) == offsetof(iovec, iov_base) &&
                  offsetof(IoSlice, size) == offsetof(iovec, iov_len),
              "IoSlice is laid out as struct iovec");

class PlainTransport final : public Transport {
  public:
    PlainTransport() = default;
    ~PlainTransport() override { close(); }
    PlainTransport(const PlainTransport&) = delete;
    PlainTransport& operator=(const PlainTransport&) = delete;

    void attach(int fd, std::string_view received) override {
        fd_ = fd;
        if (!received.empty()) received_ = std::make_unique<std::string>(received);
    }

    IoResult read(char* into, std::size_t room) override {
        if (received_) return read_received(into, room);
        const ssize_t got = ::read(fd_, into, room);
        if (got > 0) return {static_cast<std::size_t>(got), IoResult::Status::ok};
        if (got == 0) return {0, IoResult::Status::end_of_stream};
        return failed_call(errno);
    }

    IoResult write(const IoSlice* slices, std::size_t count) override {
        ssize_t put = 0;
        if (count == 0) return {};
        if (count == 1) {
            put = ::send(fd_, slices->data, slices->size, MSG_NOSIGNAL);
        } else {
            msghdr message{};
            // iovec's base is not const; the kernel only reads it.
            message.msg_iov = reinterpret_cast<iovec*>(const_cast<IoSlice*>(slices));
            message.msg_iovlen = count < IOV_MAX ? count : IOV_MAX;
            put = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
        }
        if (put >= 0) return {static_cast<std::size_t>(put), IoResult::Status::ok};
        return failed_call(errno);
    }

    bool shutdown_write() override { return ::shutdown(fd_, SHUT_WR) == 0; }

    std::size_t unsent() const override {
        int queued = 0;
        if (::ioctl(fd_, SIOCOUTQ, &queued) != 0) return 0;
        return queued > 0 ? static_cast<std::size_t>(queued) : 0;
    }

    void close() override {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    std::string_view name() const override { return "tcp"; }

  private:
    static IoResult failed_call(int error) {
        if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) {
            return {0, IoResult::Status::would_block};
        }
        return {0, IoResult::Status::error, error};
    }

    // The accept filters' leftovers come first.
    IoResult read_received(char* into, std::size_t room) {
        const std::size_t n = room < received_->size() ? room : received_->size();
        std::memcpy(into, received_->data(), n);
        received_->erase(0, n);
        if (received_->empty()) received_.reset();
        // The socket may hold more: the caller reads again (more), up to its budget.
        IoResult result{n, IoResult::Status::ok};
        result.more = true;
        return result;
    }

    int fd_ = -1;
    std::unique_ptr<std::string> received_;
};

}  // namespace reactor

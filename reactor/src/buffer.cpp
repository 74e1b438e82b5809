#include "reactor/buffer.hpp"

#include <event2/buffer.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>

namespace reactor {

namespace {
evbuffer* eb(void* handle) {
    return static_cast<evbuffer*>(handle);
}
}  // namespace

Buffer::Buffer() = default;

Buffer::~Buffer() {
    if (handle_ != nullptr) evbuffer_free(eb(handle_));
}

void* Buffer::storage() {
    if (handle_ == nullptr) {
        handle_ = evbuffer_new();
        if (handle_ == nullptr) throw std::bad_alloc();
    }
    return handle_;
}

Buffer::Buffer(Buffer&& other) noexcept
    : handle_(other.handle_), front_(other.front_), lent_(other.lent_) {
    other.handle_ = nullptr;
    other.front_ = {};
    other.lent_ = false;
}

void Buffer::borrow_front(std::string_view bytes) {
    assert(empty());
    front_ = bytes;
    lent_ = true;
}

std::size_t Buffer::keep_front() {
    if (!lent_) return 0;
    lent_ = false;
    const std::string_view bytes = front_;
    front_ = {};
    if (bytes.empty()) return 0;
    if (evbuffer_add(eb(storage()), bytes.data(), bytes.size()) != 0) throw std::bad_alloc();
    return bytes.size();
}

std::size_t Buffer::size() const {
    if (lent_) return front_.size();
    return handle_ == nullptr ? 0 : evbuffer_get_length(eb(handle_));
}

void Buffer::append(std::string_view bytes) {
    append(bytes.data(), bytes.size());
}

void Buffer::append(const void* data, std::size_t n) {
    if (n == 0) return;
    keep_front();
    if (evbuffer_add(eb(storage()), data, n) != 0) throw std::bad_alloc();
}

void Buffer::append(Buffer& other) {
    keep_front();
    other.keep_front();
    if (other.empty()) return;
    evbuffer_add_buffer(eb(storage()), eb(other.handle_));
}

std::string_view Buffer::peek(std::size_t n) {
    if (lent_) return front_.substr(0, n);
    n = std::min(n, size());
    if (n == 0) return {};
    auto* p = evbuffer_pullup(eb(handle_), static_cast<ev_ssize_t>(n));
    return {reinterpret_cast<const char*>(p), n};
}

std::string_view Buffer::contiguous_front() const {
    if (lent_) return front_;
    if (handle_ == nullptr) return {};
    evbuffer_iovec first{};
    if (evbuffer_peek(eb(handle_), -1, nullptr, &first, 1) < 1) return {};
    return {static_cast<const char*>(first.iov_base), first.iov_len};
}

std::size_t Buffer::copy_out(std::size_t offset, void* out, std::size_t n) const {
    const std::size_t len = size();
    if (offset >= len || n == 0) return 0;
    if (lent_) {
        n = std::min(n, len - offset);
        std::memcpy(out, front_.data() + offset, n);
        return n;
    }
    evbuffer_ptr pos;
    if (evbuffer_ptr_set(eb(handle_), &pos, offset, EVBUFFER_PTR_SET) != 0) return 0;
    const ev_ssize_t got = evbuffer_copyout_from(eb(handle_), &pos, out, std::min(n, len - offset));
    return got < 0 ? 0 : static_cast<std::size_t>(got);
}

std::size_t Buffer::find(std::string_view needle, std::size_t start, std::size_t end) const {
    const std::size_t len = size();
    end = std::min(end, len);
    if (needle.empty() || start >= end || end - start < needle.size()) return npos;
    if (lent_) {
        const std::size_t at = front_.substr(0, end).find(needle, start);
        return at == std::string_view::npos ? npos : at;
    }
    evbuffer_ptr from;
    evbuffer_ptr to;
    if (evbuffer_ptr_set(eb(handle_), &from, start, EVBUFFER_PTR_SET) != 0) return npos;
    evbuffer_ptr* to_ptr = nullptr;
    if (end < len) {
        if (evbuffer_ptr_set(eb(handle_), &to, end, EVBUFFER_PTR_SET) != 0) return npos;
        to_ptr = &to;
    }
    const evbuffer_ptr hit =
        evbuffer_search_range(eb(handle_), needle.data(), needle.size(), &from, to_ptr);
    return hit.pos < 0 ? npos : static_cast<std::size_t>(hit.pos);
}

void Buffer::drain(std::size_t n) {
    if (lent_) {
        front_.remove_prefix(std::min(n, front_.size()));
        return;
    }
    if (handle_ == nullptr) return;
    evbuffer_drain(eb(handle_), n);
}

std::string Buffer::take(std::size_t n) {
    n = std::min(n, size());
    if (lent_) {
        std::string out(front_.substr(0, n));
        front_.remove_prefix(n);
        return out;
    }
    std::string out(n, '\0');
    if (n == 0) return out;
    evbuffer_remove(eb(handle_), out.data(), n);
    return out;
}

std::string Buffer::to_string() const {
    if (lent_) return std::string(front_);
    std::string out(size(), '\0');
    if (out.empty()) return out;
    evbuffer_copyout(eb(handle_), out.data(), out.size());
    return out;
}

}  // namespace reactor

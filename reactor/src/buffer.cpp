#include "reactor/buffer.hpp"

#include <event2/buffer.h>

#include <algorithm>
#include <new>

namespace reactor {

namespace {
evbuffer* eb(void* handle) {
    return static_cast<evbuffer*>(handle);
}
}  // namespace

Buffer::Buffer() : handle_(evbuffer_new()), owned_(true) {
    if (handle_ == nullptr) throw std::bad_alloc();
}

Buffer::~Buffer() {
    if (owned_ && handle_ != nullptr) evbuffer_free(eb(handle_));
}

Buffer::Buffer(Buffer&& other) noexcept : handle_(other.handle_), owned_(other.owned_) {
    other.handle_ = nullptr;
    other.owned_ = false;
}

Buffer Buffer::borrow(void* evbuffer_handle) {
    return Buffer(evbuffer_handle, false);
}

std::size_t Buffer::size() const {
    return evbuffer_get_length(eb(handle_));
}

void Buffer::append(std::string_view bytes) {
    append(bytes.data(), bytes.size());
}

void Buffer::append(const void* data, std::size_t n) {
    if (n != 0 && evbuffer_add(eb(handle_), data, n) != 0) throw std::bad_alloc();
}

void Buffer::append(Buffer& other) {
    evbuffer_add_buffer(eb(handle_), eb(other.handle_));
}

std::string_view Buffer::peek(std::size_t n) {
    n = std::min(n, size());
    if (n == 0) return {};
    auto* p = evbuffer_pullup(eb(handle_), static_cast<ev_ssize_t>(n));
    return {reinterpret_cast<const char*>(p), n};
}

std::string_view Buffer::contiguous_front() const {
    evbuffer_iovec first{};
    if (evbuffer_peek(eb(handle_), -1, nullptr, &first, 1) < 1) return {};
    return {static_cast<const char*>(first.iov_base), first.iov_len};
}

std::size_t Buffer::copy_out(std::size_t offset, void* out, std::size_t n) const {
    const std::size_t len = size();
    if (offset >= len || n == 0) return 0;
    evbuffer_ptr pos;
    if (evbuffer_ptr_set(eb(handle_), &pos, offset, EVBUFFER_PTR_SET) != 0) return 0;
    const ev_ssize_t got = evbuffer_copyout_from(eb(handle_), &pos, out, std::min(n, len - offset));
    return got < 0 ? 0 : static_cast<std::size_t>(got);
}

std::size_t Buffer::find(std::string_view needle, std::size_t start, std::size_t end) const {
    const std::size_t len = size();
    end = std::min(end, len);
    if (needle.empty() || start >= end || end - start < needle.size()) return npos;
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
    evbuffer_drain(eb(handle_), n);
}

std::string Buffer::take(std::size_t n) {
    n = std::min(n, size());
    std::string out(n, '\0');
    evbuffer_remove(eb(handle_), out.data(), n);
    return out;
}

std::string Buffer::to_string() const {
    std::string out(size(), '\0');
    evbuffer_copyout(eb(handle_), out.data(), out.size());
    return out;
}

}  // namespace reactor

// The TLS transport (see tls_transport.hpp) and its BIO.

#include "tls_transport.hpp"

#include <linux/sockios.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace reactor {

namespace {

TlsTransport& transport_of(BIO* bio) {
    return *static_cast<TlsTransport*>(BIO_get_data(bio));
}

int bio_read(BIO* bio, char* into, int room) {
    BIO_clear_retry_flags(bio);
    bool retry = false;
    const int got = transport_of(bio).socket_read(into, room, retry);
    if (retry) BIO_set_retry_read(bio);
    return got;
}

int bio_write(BIO* bio, const char* bytes, int size) {
    BIO_clear_retry_flags(bio);
    // Never blocks: what the socket does not take is held by the transport.
    transport_of(bio).socket_write(bytes, static_cast<std::size_t>(size));
    return size;
}

long bio_ctrl(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "reactor socket");
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_ctrl(m, bio_ctrl);
        BIO_meth_set_create(m, bio_create);
        return m;
    }();
    return method;
}

bool would_block(int error) {
    return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

// Small slices are gathered into records of up to this much: a reply per record would cost a
// record's overhead and a send each.
constexpr std::size_t kGather = 16 * 1024;
constexpr std::size_t kSmallSlice = 4 * 1024;

constexpr std::string_view kPlainHttpAnswer =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 52\r\n"
    "Connection: close\r\n"
    "\r\n"
    "400 Bad Request: a plain HTTP request to a TLS port\n";
static_assert(std::string_view("400 Bad Request: a plain HTTP request to a TLS port\n").size() ==
              52);

}  // namespace

TlsTransport::TlsTransport(std::shared_ptr<const TlsSetup> setup) : setup_(std::move(setup)) {}

TlsTransport::~TlsTransport() {
    close();
}

void TlsTransport::attach(int fd, std::string_view received) {
    fd_ = fd;
    if (!received.empty()) received_ = std::make_unique<std::string>(received);
    ssl_ = SSL_new(setup_->ctx.get());
    if (ssl_ == nullptr) return;  // handshake() fails
    BIO* bio = BIO_new(socket_method());
    if (bio == nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
        return;
    }
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);
    if (setup_->server) {
        SSL_set_accept_state(ssl_);
        return;
    }
    SSL_set_connect_state(ssl_);
    const std::string& name = setup_->server_name;
    if (name.empty()) return;
    const bool is_address = name.find(':') != std::string::npos ||
                            name.find_first_not_of("0123456789.") == std::string::npos;
    // SNI names hosts only (RFC 6066), never addresses.
    if (!is_address) SSL_set_tlsext_host_name(ssl_, name.c_str());
    if (setup_->verify) {
        if (is_address) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
        } else {
            SSL_set1_host(ssl_, name.c_str());
        }
    }
    if (!setup_->alpn.empty()) {
        SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(setup_->alpn.data()),
                            static_cast<unsigned>(setup_->alpn.size()));
    }
}

int TlsTransport::socket_read(char* into, int room, bool& retry) {
    if (received_) {
        const std::size_t n = std::min(static_cast<std::size_t>(room), received_->size());
        std::memcpy(into, received_->data(), n);
        received_->erase(0, n);
        if (received_->empty()) received_.reset();
        if (!saw_bytes_ && n > 0) {
            saw_bytes_ = true;
            first_byte_ = into[0];
        }
        return static_cast<int>(n);
    }
    const ssize_t got = ::read(fd_, into, static_cast<std::size_t>(room));
    if (got > 0) {
        if (!saw_bytes_) {
            saw_bytes_ = true;
            first_byte_ = into[0];
        }
        return static_cast<int>(got);
    }
    if (got == 0) return 0;
    if (would_block(errno)) {
        retry = true;
    } else {
        socket_error_ = errno;
    }
    return -1;
}

void TlsTransport::socket_write(const char* bytes, std::size_t size) {
    if (socket_error_ != 0) return;
    if (held_.empty()) {
        const ssize_t put = ::send(fd_, bytes, size, MSG_NOSIGNAL);
        if (put < 0 && !would_block(errno)) {
            socket_error_ = errno;
            return;
        }
        if (put > 0) {
            bytes += put;
            size -= static_cast<std::size_t>(put);
        }
    }
    held_.append(bytes, size);
}

bool TlsTransport::send_held() {
    while (!held_.empty() && socket_error_ == 0) {
        const ssize_t put = ::send(fd_, held_.data(), held_.size(), MSG_NOSIGNAL);
        if (put < 0) {
            if (!would_block(errno)) socket_error_ = errno;
            break;
        }
        held_.erase(0, static_cast<std::size_t>(put));
    }
    if (held_.empty()) {
        // A burst's records leave no large buffer behind.
        if (held_.capacity() > 64 * 1024) std::string().swap(held_);
        if (shut_down_ && socket_error_ == 0) {
            shut_down_ = false;
            if (::shutdown(fd_, SHUT_WR) != 0) socket_error_ = errno;
        }
    }
    return socket_error_ == 0;
}

Transport::Handshake TlsTransport::handshake() {
    if (ssl_ == nullptr) return {Handshake::Status::failed, "cannot make a TLS session"};
    if (!held_.empty()) {
        if (!send_held()) return {Handshake::Status::failed, "the socket failed"};
        if (!held_.empty()) return {Handshake::Status::want_write, {}};
    }
    if (established_) return {};
    ERR_clear_error();
    const int done = SSL_do_handshake(ssl_);
    if (done == 1) {
        note_established();
        if (socket_error_ != 0) return {Handshake::Status::failed, "the socket failed"};
        return held_.empty() ? Handshake{} : Handshake{Handshake::Status::want_write, {}};
    }
    const int error = SSL_get_error(ssl_, done);
    if (socket_error_ == 0) {
        if (error == SSL_ERROR_WANT_READ) {
            return {held_.empty() ? Handshake::Status::want_read : Handshake::Status::want_write,
                    {}};
        }
        if (error == SSL_ERROR_WANT_WRITE) return {Handshake::Status::want_write, {}};
    }
    return handshake_failed(error);
}

Transport::Handshake TlsTransport::handshake_failed(int ssl_error) {
    if (setup_->counters) setup_->counters->failed.fetch_add(1, std::memory_order_relaxed);
    const bool plaintext = saw_bytes_ && first_byte_ >= 'A' && first_byte_ <= 'Z';
    if (socket_error_ != 0) {
        error_ = std::string("socket: ") + std::strerror(socket_error_);
    } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        error_ = saw_bytes_ ? "the peer closed during the handshake"
                            : "the peer closed before the handshake";
    } else if (plaintext) {
        ERR_clear_error();
        error_ = "plaintext sent to a TLS port";
        if (setup_->answer_plain_http) answer_plain_http();
    } else {
        error_ = openssl_errors();
        if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK) {
            error_ += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
        }
    }
    return {Handshake::Status::failed, error_};
}

void TlsTransport::answer_plain_http() {
    // What the peer sent is a request line; nothing sealed went out yet. Best effort, as nginx.
    if (!held_.empty()) return;
    [[maybe_unused]] const ssize_t put =
        ::send(fd_, kPlainHttpAnswer.data(), kPlainHttpAnswer.size(), MSG_NOSIGNAL);
}

void TlsTransport::note_established() {
    established_ = true;
    info_.version = SSL_get_version(ssl_);
    if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_)) {
        info_.cipher = SSL_CIPHER_get_name(cipher);
    }
    const unsigned char* alpn = nullptr;
    unsigned alpn_size = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_size);
    if (alpn != nullptr) info_.alpn = {reinterpret_cast<const char*>(alpn), alpn_size};
    if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) {
        info_.server_name = name;
    }
    info_.resumed = SSL_session_reused(ssl_) == 1;
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (peer != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) {
        if (BIO* text = BIO_new(BIO_s_mem())) {
            X509_NAME_print_ex(text, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            char* bytes = nullptr;
            const long size = BIO_get_mem_data(text, &bytes);
            if (size > 0) info_.peer_subject.assign(bytes, static_cast<std::size_t>(size));
            BIO_free(text);
        }
    }
    if (setup_->counters) {
        (info_.resumed ? setup_->counters->resumed : setup_->counters->full)
            .fetch_add(1, std::memory_order_relaxed);
    }
}

IoResult TlsTransport::read(char* into, std::size_t room) {
    if (ssl_ == nullptr) return {0, IoResult::Status::error, EPROTO};
    if (!held_.empty()) send_held();
    if (socket_error_ != 0) return {0, IoResult::Status::error, socket_error_};
    ERR_clear_error();
    std::size_t got = 0;
    const int done = SSL_read_ex(ssl_, into, room, &got);
    if (done == 1) {
        IoResult result{got, IoResult::Status::ok};
        result.more = SSL_has_pending(ssl_) == 1 || received_ != nullptr;
        return result;
    }
    return read_stopped(SSL_get_error(ssl_, done));
}

IoResult TlsTransport::read_stopped(int ssl_error) {
    if (socket_error_ != 0) return {0, IoResult::Status::error, socket_error_};
    switch (ssl_error) {
        case SSL_ERROR_WANT_READ:
            // Records a read answered (a key update) wait for the socket to take them.
            return {0,
                    held_.empty() ? IoResult::Status::would_block : IoResult::Status::want_write};
        case SSL_ERROR_WANT_WRITE:
            return {0, IoResult::Status::want_write};
        case SSL_ERROR_ZERO_RETURN:  // close_notify
            return {0, IoResult::Status::end_of_stream};
        case SSL_ERROR_SYSCALL:
            ERR_clear_error();
            return {0, IoResult::Status::end_of_stream};
        default:
            break;
    }
    const unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
        ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        // The peer closed its socket without close_notify. Taken as the end of its stream: the
        // protocol's framing judges whether what came before is complete (a frame cut short at
        // the end is its protocol error, as over plain TCP).
        ERR_clear_error();
        return {0, IoResult::Status::end_of_stream};
    }
    error_ = openssl_errors();
    return {0, IoResult::Status::error, EPROTO};
}

bool TlsTransport::seal(const char* bytes, std::size_t size) {
    ERR_clear_error();
    std::size_t written = 0;
    if (SSL_write_ex(ssl_, bytes, size, &written) != 1 || written != size) {
        error_ = openssl_errors();
        if (socket_error_ == 0) socket_error_ = EPROTO;
        return false;
    }
    return socket_error_ == 0;
}

IoResult TlsTransport::write(const IoSlice* slices, std::size_t count) {
    if (ssl_ == nullptr) return {0, IoResult::Status::error, EPROTO};
    if (!held_.empty() || shut_down_) {
        if (!send_held()) return {0, IoResult::Status::error, socket_error_};
        if (!held_.empty()) {
            IoResult waiting{0, IoResult::Status::would_block};
            waiting.more = true;
            return waiting;
        }
    }
    if (socket_error_ != 0) return {0, IoResult::Status::error, socket_error_};
    // Small slices are gathered, so that the replies of one pass share records; a large one is
    // sealed a record at a time. Sealing stops as soon as the socket leaves bytes over: what the
    // transport holds stays within a record or two, and the rest waits in the connection's output,
    // where output_high_water and output_limit see it.
    thread_local char gathered[kGather];
    std::size_t gathered_size = 0;
    std::size_t taken = 0;
    bool stopped = false;
    for (std::size_t i = 0; i < count && !stopped; ++i) {
        const auto* bytes = static_cast<const char*>(slices[i].data);
        const std::size_t size = slices[i].size;
        if (size == 0) continue;
        if (count > 1 && size < kSmallSlice) {
            if (gathered_size + size > kGather) {
                if (!seal(gathered, gathered_size)) break;
                taken += gathered_size;
                gathered_size = 0;
                if (!held_.empty()) break;
            }
            std::memcpy(gathered + gathered_size, bytes, size);
            gathered_size += size;
            continue;
        }
        if (gathered_size != 0) {
            if (!seal(gathered, gathered_size)) break;
            taken += gathered_size;
            gathered_size = 0;
            if (!held_.empty()) break;
        }
        for (std::size_t done = 0; done < size;) {
            const std::size_t record = std::min(kGather, size - done);
            if (!seal(bytes + done, record)) {
                stopped = true;
                break;
            }
            done += record;
            taken += record;
            if (!held_.empty()) {
                stopped = true;
                break;
            }
        }
    }
    if (gathered_size != 0 && socket_error_ == 0 && seal(gathered, gathered_size)) {
        taken += gathered_size;
    }
    if (socket_error_ != 0) return {0, IoResult::Status::error, socket_error_};
    IoResult result{taken, IoResult::Status::ok};
    result.more = !held_.empty();
    return result;
}

bool TlsTransport::shutdown_write() {
    if (ssl_ == nullptr || socket_error_ != 0) return false;
    if (established_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);  // queues close_notify; the peer's answer is not waited for
        ERR_clear_error();
    }
    shut_down_ = true;
    return send_held();
}

std::size_t TlsTransport::unsent() const {
    int queued = 0;
    if (fd_ < 0 || ::ioctl(fd_, SIOCOUTQ, &queued) != 0) queued = 0;
    return held_.size() + (queued > 0 ? static_cast<std::size_t>(queued) : 0);
}

void TlsTransport::close() {
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace reactor

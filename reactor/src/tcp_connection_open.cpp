// How a connection opens: its accept filters on the first bytes, its transport's handshake, then
// on_open. The rest of TcpConnection is in tcp_connection.cpp.

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "filter_stage.hpp"
#include "log_rates.hpp"
#include "reactor/log.hpp"
#include "socket_address.hpp"
#include "tcp_connection.hpp"

namespace reactor {

void TcpConnection::start() {
    if (accepted_ && !group_->filters.empty()) {
        filters_ = std::make_unique<FilterStage>(*this);
        filters_->filter = filters_->factory().create();
        arm_timer(filters_->factory().deadline());
        event_add(read_event_.get(), nullptr);
        run_filters();  // the first inspection, with no bytes
        return;
    }
    filters_done({});
}

void TcpConnection::filter_input() {
    FilterStage& stage = *filters_;
    const std::size_t budget = stage.factory().byte_budget();
    if (stage.bytes.size() < budget) {
        char chunk[4096];
        const std::size_t room = std::min(sizeof chunk, budget - stage.bytes.size());
        const ssize_t got = ::read(fd_, chunk, room);
        if (got == 0) {
            end_now(CloseReason::peer_closed);
            return;
        }
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) fail("read", errno);
            return;
        }
        stats_.bytes_in += static_cast<std::size_t>(got);
        stage.bytes.append(chunk, static_cast<std::size_t>(got));
    }
    run_filters();
}

void TcpConnection::run_filters() {
    FilterStage& stage = *filters_;
    for (;;) {
        FilterVerdict verdict = FilterVerdict::need_more();
        try {
            verdict = stage.filter->inspect(stage.bytes, stage);
        } catch (const std::exception& e) {
            verdict = FilterVerdict::reject(std::string("threw: ") + e.what());
        } catch (...) {
            verdict = FilterVerdict::reject("threw");
        }
        switch (verdict.status()) {
            case FilterVerdict::Status::need_more:
                if (stage.bytes.size() >= stage.factory().byte_budget()) {
                    reject(std::string(stage.factory().name()) + ": no verdict within " +
                           std::to_string(stage.factory().byte_budget()) + " bytes");
                }
                return;
            case FilterVerdict::Status::reject:
                reject(std::string(stage.factory().name()) + ": " + verdict.reason());
                return;
            case FilterVerdict::Status::accept:
                break;
        }
        stage.bytes.erase(0, std::min(verdict.consumed(), stage.bytes.size()));
        if (stage.last()) {
            const std::string received = std::move(stage.bytes);
            filters_.reset();
            filters_done(received);
            return;
        }
        ++stage.index;
        stage.filter = stage.factory().create();
        arm_timer(stage.factory().deadline());
    }
}

void TcpConnection::reject(const std::string& why) {
    log_limited(log_rates::protocol_error(), "listener=", group_->name, " conn=", id_,
                " peer=", peer_, " rejected by accept filter ", why);
    end_now(CloseReason::rejected);
}

void TcpConnection::filters_done(std::string_view received) {
    phase_ = Phase::handshaking;
    stop_timer();
    transport().attach(fd_, received);
    if (transport_) {
        const auto timeout = group_->transport->handshake_timeout();
        if (timeout.count() > 0) arm_timer(timeout);
    }
    advance_handshake();
}

void TcpConnection::advance_handshake() {
    Transport::Handshake step;
    try {
        step = transport().handshake();
    } catch (const std::exception& e) {
        step = {Transport::Handshake::Status::failed, e.what()};
    } catch (...) {
        step = {Transport::Handshake::Status::failed, "threw"};
    }
    switch (step.status) {
        case Transport::Handshake::Status::done:
            open();
            return;
        case Transport::Handshake::Status::want_read:
            disarm_write();
            if (!event_pending(read_event_.get(), EV_READ, nullptr)) {
                event_add(read_event_.get(), nullptr);
            }
            return;
        case Transport::Handshake::Status::want_write:
            arm_write();
            return;
        case Transport::Handshake::Status::failed:
            log_limited(log_rates::protocol_error(), "listener=", group_->name, " conn=", id_,
                        " peer=", peer_, " ", transport().name(),
                        " handshake failed: ", step.reason);
            report_not_opened(std::string(transport().name()) +
                              " handshake failed: " + std::string(step.reason));
            end_now(CloseReason::handshake_failed);
            return;
    }
}

void TcpConnection::open() {
    // Bytes that came with the opening (a filter's leftovers, a transport's early data) wait in
    // the transport, where no readable event announces them.
    const bool may_hold_input = transport_ != nullptr || !group_->filters.empty();
    phase_ = Phase::open;
    stop_timer();
    disarm_write();
    event_del(read_event_.get());
    log_limited(log_rates::connection_opened(), "listener=", group_->name, " conn=", id_,
                " loop=", counters_.loop_index, " opened from ", peer_);
    if (group_->handlers.on_open) guarded("on_open", [&] { group_->handlers.on_open(*this); });
    if (opened_) {
        const auto opened = std::move(opened_);
        (*opened)(id_, {});
    }
    if (closing_) return;
    if (read_pauses_ == 0) event_add(read_event_.get(), nullptr);
    if (group_->limits.idle_timeout.count() > 0) arm_timer(group_->limits.idle_timeout);
    // Sends queued before on_open (Server::send to a connection in its handshake) go out now.
    if (output_may_hold_bytes_) schedule_flush();
    if (may_hold_input && read_pauses_ == 0) read_and_process();
}

void TcpConnection::report_not_opened(const std::string& why) {
    if (!opened_ || phase_ == Phase::open) return;
    const auto opened = std::move(opened_);
    (*opened)(0, why);
}

const std::string& TcpConnection::local() const {
    if (!local_) {
        local_ = std::make_unique<std::string>(local_address(fd_));
    }
    return *local_;
}

void TcpConnection::set_local(std::string address) {
    local_ = std::make_unique<std::string>(std::move(address));
}

}  // namespace reactor

#include "reactor/protocol.hpp"

namespace reactor {

namespace {

class RawProtocol final : public Protocol {
  public:
    Decoded decode(Buffer& in, MessageSink& out) override {
        const std::size_t n = in.size();
        Message message;
        message.payload = in.peek(n);
        out.deliver(message);
        in.drain(n);
        return Decoded::frame();
    }
    void encode(std::string_view payload, FrameOutput& out) override { out.append(payload); }
};

class RawFactory final : public ProtocolFactory {
  public:
    std::string_view name() const override { return "raw"; }
    std::unique_ptr<Protocol> create() const override { return std::make_unique<RawProtocol>(); }
};

}  // namespace

std::shared_ptr<const ProtocolFactory> raw_protocol() {
    static const auto factory = std::make_shared<RawFactory>();
    return factory;
}

}  // namespace reactor

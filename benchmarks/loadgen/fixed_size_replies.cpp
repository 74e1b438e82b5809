#include "reply_framers.hpp"

namespace loadgen {

namespace {

class FixedSizeReplies final : public reactor::Protocol {
  public:
    explicit FixedSizeReplies(std::size_t size) : size_(size) {}

    reactor::Decoded decode(reactor::Buffer& in, reactor::MessageSink& out) override {
        if (in.size() < size_) return reactor::Decoded::need_more();
        reactor::Message message;
        out.deliver(message);
        in.drain(size_);
        return reactor::Decoded::frame();
    }
    void encode(std::string_view payload, reactor::FrameOutput& out) override {
        out.append(payload);
    }

  private:
    std::size_t size_;
};

class FixedSizeFactory final : public reactor::ProtocolFactory {
  public:
    explicit FixedSizeFactory(std::size_t size) : size_(size) {}
    std::string_view name() const override { return "fixed-size"; }
    std::unique_ptr<reactor::Protocol> create() const override {
        return std::make_unique<FixedSizeReplies>(size_);
    }

  private:
    std::size_t size_;
};

}  // namespace

std::shared_ptr<const reactor::ProtocolFactory> fixed_size_replies(std::size_t size) {
    return std::make_shared<FixedSizeFactory>(size == 0 ? 1 : size);
}

}  // namespace loadgen

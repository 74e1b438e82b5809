#include "plugin_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string_view>

#include "reactor/protocol_plugin.h"

namespace reactor::protocols {

namespace {

// The open shared object. Closing it unmaps the plugin's code, so everything that may still call
// into the plugin holds a reference to this.
class PluginLibrary {
  public:
    PluginLibrary(std::string path, void* handle) : path_(std::move(path)), handle_(handle) {}
    ~PluginLibrary() { dlclose(handle_); }
    PluginLibrary(const PluginLibrary&) = delete;
    PluginLibrary& operator=(const PluginLibrary&) = delete;

    void* handle() const { return handle_; }
    const std::string& path() const { return path_; }

    // Set once the descriptor passed its checks.
    const reactor_protocol_v1* api = nullptr;
    std::string name;

  private:
    std::string path_;
    void* handle_;
};

// The plugin's own factory object, built from one listener's options.
class NativeFactory {
  public:
    NativeFactory(std::shared_ptr<const PluginLibrary> library, void* handle, std::size_t max_frame)
        : library_(std::move(library)), handle_(handle) {
        const std::size_t slack = REACTOR_PROTOCOL_VIEW_SLACK;
        view_limit_ = max_frame > std::numeric_limits<std::size_t>::max() - slack
                          ? std::numeric_limits<std::size_t>::max()
                          : max_frame + slack;
    }
    ~NativeFactory() { library_->api->factory_free(handle_); }
    NativeFactory(const NativeFactory&) = delete;
    NativeFactory& operator=(const NativeFactory&) = delete;

    const reactor_protocol_v1& api() const { return *library_->api; }
    const std::string& name() const { return library_->name; }
    const void* handle() const { return handle_; }
    std::size_t view_limit() const { return view_limit_; }

  private:
    std::shared_ptr<const PluginLibrary> library_;
    void* handle_;
    std::size_t view_limit_;
};

// What one decode call reported through its callbacks. Host exceptions (from the application's
// on_message, or allocation) must not unwind through the plugin's frames: they are parked here and
// rethrown once the plugin has returned.
struct DecodeCall {
    DecodeCall(MessageSink& s, std::size_t b) : sink(s), buffered(b) {}

    MessageSink& sink;
    std::size_t buffered;
    std::size_t consumed = 0;
    std::size_t expected = 0;
    int deliveries = 0;
    bool failed = false;
    ProtocolError error;
    const char* broken_rule = nullptr;
    std::exception_ptr exception;
};

int deliver_message(void* host, const char* payload, std::size_t size) {
    auto& call = *static_cast<DecodeCall*>(host);
    if (call.exception || call.broken_rule) return 0;
    if (++call.deliveries > 1) {
        call.broken_rule = "delivered more than one message in one decode call";
        return 0;
    }
    if (payload == nullptr && size != 0) {
        call.broken_rule = "delivered a null payload";
        return 0;
    }
    try {
        Message message;
        if (size != 0) message.payload = std::string_view(payload, size);
        call.sink.deliver(message);
        return call.sink.accepting() ? 1 : 0;
    } catch (...) {
        call.exception = std::current_exception();
        return 0;
    }
}

void consume_input(void* host, std::size_t n) {
    auto& call = *static_cast<DecodeCall*>(host);
    if (n > call.buffered - call.consumed) {
        call.broken_rule = "consumed more bytes than were buffered";
        return;
    }
    call.consumed += n;
}

void fail_connection(void* host, const char* reason, const char* last_reply,
                     std::size_t last_reply_size) {
    auto& call = *static_cast<DecodeCall*>(host);
    call.failed = true;
    try {
        call.error.reason = reason != nullptr ? reason : "";
        if (last_reply != nullptr) call.error.last_reply.assign(last_reply, last_reply_size);
    } catch (...) {
        call.exception = std::current_exception();
    }
}

void expect_frame(void* host, std::size_t frame_size) {
    static_cast<DecodeCall*>(host)->expected = frame_size;
}

// Collects what encode() (into a FrameOutput) or busy_notice() (into a string) writes.
template <typename Target>
struct WriteCall {
    Target& target;
    std::exception_ptr exception;

    static void append(void* host, const char* bytes, std::size_t size) {
        auto& call = *static_cast<WriteCall*>(host);
        if (call.exception || size == 0) return;
        try {
            call.target.append(bytes, size);
        } catch (...) {
            call.exception = std::current_exception();
        }
    }

    reactor_protocol_writer writer() {
        reactor_protocol_writer w{};
        w.struct_size = sizeof w;
        w.host = this;
        w.append = &WriteCall::append;
        return w;
    }
};

class PluginProtocol final : public Protocol {
  public:
    explicit PluginProtocol(std::shared_ptr<const NativeFactory> factory)
        : factory_(std::move(factory)), api_(factory_->api()) {
        instance_ = api_.instance_new(factory_->handle());
        if (instance_ == nullptr) throw std::bad_alloc();
    }
    ~PluginProtocol() override { api_.instance_free(instance_); }
    PluginProtocol(const PluginProtocol&) = delete;
    PluginProtocol& operator=(const PluginProtocol&) = delete;

    Decoded decode(Buffer& in, MessageSink& out) override {
        // The plugin said how long the pending frame is: nothing to look at until it is all here.
        if (expected_ > in.size()) return Decoded::need_more();
        expected_ = 0;
        return run(api_.decode, in, out, false);
    }

    Decoded decode_eof(Buffer& in, MessageSink& out) override {
        if (api_.decode_eof == nullptr) return Decoded::need_more();
        return run(api_.decode_eof, in, out, true);
    }

    void encode(std::string_view payload, FrameOutput& out) override {
        // The plugin's C writer appends to the host's output as it likes.
        WriteCall<FrameOutput> call{out, {}};
        const reactor_protocol_writer writer = call.writer();
        api_.encode(instance_, payload.data(), payload.size(), &writer);
        if (call.exception) std::rethrow_exception(call.exception);
    }

    std::string busy_notice() const override {
        if (api_.busy_notice == nullptr) return {};
        std::string notice;
        WriteCall<std::string> call{notice, {}};
        const reactor_protocol_writer writer = call.writer();
        api_.busy_notice(instance_, &writer);
        if (call.exception) std::rethrow_exception(call.exception);
        return notice;
    }

  private:
    using DecodeFn = int (*)(void*, const reactor_protocol_input*,
                             const reactor_protocol_decode_out*);

    Decoded run(DecodeFn fn, Buffer& in, MessageSink& out, bool at_eof) {
        // Only a bounded prefix is made contiguous, however much is buffered.
        const std::string_view view = in.peek(std::min(in.size(), factory_->view_limit()));
        const reactor_protocol_input input{view.data(), view.size(), in.size()};
        DecodeCall call(out, in.size());
        reactor_protocol_decode_out report{};
        report.struct_size = sizeof report;
        report.host = &call;
        report.deliver = &deliver_message;
        report.consume = &consume_input;
        report.fail = &fail_connection;
        report.expect = &expect_frame;

        const int status = fn(instance_, &input, &report);

        if (call.exception) std::rethrow_exception(call.exception);
        if (call.broken_rule != nullptr) return broken(call.broken_rule);
        if (call.failed || status == REACTOR_DECODE_ERROR) {
            if (call.error.reason.empty())
                call.error.reason = plugin() + " failed without a reason";
            return Decoded::fail(std::move(call.error.reason), std::move(call.error.last_reply));
        }
        if (status == REACTOR_DECODE_FRAME) {
            if (call.consumed == 0 && !at_eof)
                return broken("returned a frame without consuming input");
            in.drain(call.consumed);
            return Decoded::frame();
        }
        if (status != REACTOR_DECODE_NEED_MORE) {
            return broken("returned unknown decode status " + std::to_string(status));
        }
        if (call.deliveries != 0 || call.consumed != 0) {
            return broken("delivered or consumed input without returning a frame");
        }
        if (at_eof) return Decoded::need_more();
        // More input cannot help when the view was already cut at the limit, nor when the frame
        // the plugin waits for is longer than any view: fail now instead of buffering it.
        if (view.size() < in.size() || call.expected > factory_->view_limit()) {
            return Decoded::fail(plugin() + " frame exceeds the listener's max_frame");
        }
        expected_ = call.expected;
        return Decoded::need_more();
    }

    std::string plugin() const { return "protocol plugin '" + factory_->name() + "'"; }
    Decoded broken(const std::string& rule) const {
        return Decoded::fail(plugin() + " broke the framing contract: " + rule);
    }

    std::shared_ptr<const NativeFactory> factory_;
    const reactor_protocol_v1& api_;
    void* instance_ = nullptr;
    std::size_t expected_ = 0;
};

class PluginProtocolFactory final : public ProtocolFactory {
  public:
    explicit PluginProtocolFactory(std::shared_ptr<const NativeFactory> native)
        : native_(std::move(native)) {}
    std::string_view name() const override { return native_->name(); }
    std::unique_ptr<Protocol> create() const override {
        return std::make_unique<PluginProtocol>(native_);
    }

  private:
    std::shared_ptr<const NativeFactory> native_;
};

struct RejectCall {
    bool rejected = false;
    std::string option;
    std::string problem;
    std::exception_ptr exception;

    static void reject(void* host, const char* option, const char* problem) {
        auto& call = *static_cast<RejectCall*>(host);
        call.rejected = true;
        try {
            call.option = option != nullptr ? option : "";
            call.problem = problem != nullptr ? problem : "";
        } catch (...) {
            call.exception = std::current_exception();
        }
    }
};

std::shared_ptr<const ProtocolFactory> build_factory(
    const std::shared_ptr<const PluginLibrary>& library, const ProtocolConfig& config) {
    if (!config.options.is_object()) throw ConfigError("", "expected an object");
    nlohmann::json options = config.options;
    options.erase("name");
    const std::string text = options.dump();

    RejectCall call;
    reactor_protocol_config native_config{};
    native_config.struct_size = sizeof native_config;
    native_config.options_json = text.c_str();
    native_config.options_json_size = text.size();
    native_config.max_frame = config.max_frame;
    native_config.host = &call;
    native_config.reject = &RejectCall::reject;

    const reactor_protocol_v1& api = *library->api;
    void* handle = api.factory_new(&native_config);
    if (call.exception || call.rejected || handle == nullptr) {
        if (handle != nullptr) api.factory_free(handle);
        if (call.exception) std::rethrow_exception(call.exception);
        throw ConfigError(call.option, call.problem.empty()
                                           ? "rejected by protocol plugin '" + library->name + "'"
                                           : call.problem);
    }
    // Owned from here on: the shared_ptr frees it even if its own allocation fails.
    std::shared_ptr<const NativeFactory> native(
        new NativeFactory(library, handle, config.max_frame));
    return std::make_shared<PluginProtocolFactory>(std::move(native));
}

std::string missing_function(const reactor_protocol_v1& api) {
    if (api.factory_new == nullptr) return "factory_new";
    if (api.factory_free == nullptr) return "factory_free";
    if (api.instance_new == nullptr) return "instance_new";
    if (api.instance_free == nullptr) return "instance_free";
    if (api.decode == nullptr) return "decode";
    if (api.encode == nullptr) return "encode";
    return {};
}

}  // namespace

std::string load_protocol_plugin(const std::string& path, ProtocolRegistry& registry) {
    const auto problem = [&path](const std::string& what) {
        return std::runtime_error("protocol plugin '" + path + "': " + what);
    };

    dlerror();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        throw problem(std::string("cannot load: ") + (why != nullptr ? why : "unknown error"));
    }
    // From here every early exit closes the handle.
    auto library = std::make_shared<PluginLibrary>(path, handle);

    using Entry = const reactor_protocol_v1* (*)();
    void* symbol = dlsym(library->handle(), REACTOR_PROTOCOL_PLUGIN_SYMBOL);
    if (symbol == nullptr) {
        throw problem("no '" REACTOR_PROTOCOL_PLUGIN_SYMBOL
                      "' entry point; is it a reactor protocol plugin?");
    }
    const reactor_protocol_v1* api = reinterpret_cast<Entry>(symbol)();
    if (api == nullptr) throw problem("the entry point returned no descriptor");
    if (api->abi_version != REACTOR_PROTOCOL_ABI_VERSION) {
        throw problem("built for plugin ABI version " + std::to_string(api->abi_version) +
                      ", this host supports version " +
                      std::to_string(REACTOR_PROTOCOL_ABI_VERSION));
    }
    if (api->struct_size < sizeof(reactor_protocol_v1)) {
        throw problem("descriptor is " + std::to_string(api->struct_size) +
                      " bytes, ABI version 1 needs " + std::to_string(sizeof(reactor_protocol_v1)));
    }
    if (api->name == nullptr || api->name[0] == '\0') throw problem("descriptor has no name");
    if (const std::string missing = missing_function(*api); !missing.empty()) {
        throw problem("descriptor has no " + missing + " function");
    }
    std::string name = api->name;
    if (registry.contains(name)) {
        throw problem("protocol '" + name + "' is already registered");
    }

    library->api = api;
    library->name = name;
    std::shared_ptr<const PluginLibrary> loaded = std::move(library);
    registry.add(name,
                 [loaded](const ProtocolConfig& config) { return build_factory(loaded, config); });
    return name;
}

}  // namespace reactor::protocols

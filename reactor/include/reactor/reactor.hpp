#pragma once

// Everything a program embedding reactor needs.
#include "reactor/accept_filter.hpp"
#include "reactor/buffer.hpp"
#include "reactor/connection.hpp"
#include "reactor/endpoint.hpp"
#include "reactor/event_loop.hpp"
#include "reactor/log.hpp"
#include "reactor/message.hpp"
#include "reactor/protocol.hpp"
#include "reactor/server.hpp"
#include "reactor/transport.hpp"
#include "reactor/version.hpp"

// libzmq, loaded when a Jupyter kernel is first started (see
// common/lazy_library.h): the functions client.cc calls, as forwarders.
// A missing library fails each call with ENOSYS, as zmq reports errors.
#include <errno.h>
#include <zmq.h>

#include "common/lazy_library.h"

namespace {
egg::LazyLibrary g_zmq(EGG_ZMQ_SONAME);

int NoLibrary() {
  errno = ENOSYS;
  return -1;
}

void* NoLibraryPointer() {
  errno = ENOSYS;
  return nullptr;
}
}  // namespace

EGG_LAZY_FUNCTION(g_zmq, void*, zmq_ctx_new, (void), (), NoLibraryPointer())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_ctx_term, (void* context), (context),
                  NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, void*, zmq_socket, (void* context, int type),
                  (context, type), NoLibraryPointer())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_close, (void* s), (s), NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_connect, (void* s, const char* addr),
                  (s, addr), NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_setsockopt,
                  (void* s, int option, const void* value, size_t size),
                  (s, option, value, size), NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_send,
                  (void* s, const void* buf, size_t len, int flags),
                  (s, buf, len, flags), NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_poll,
                  (zmq_pollitem_t * items, int count, long timeout),
                  (items, count, timeout), NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_msg_init, (zmq_msg_t * msg), (msg),
                  NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_msg_close, (zmq_msg_t * msg), (msg),
                  NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, int, zmq_msg_recv,
                  (zmq_msg_t * msg, void* s, int flags), (msg, s, flags),
                  NoLibrary())
EGG_LAZY_FUNCTION(g_zmq, void*, zmq_msg_data, (zmq_msg_t * msg), (msg),
                  NoLibraryPointer())
EGG_LAZY_FUNCTION(g_zmq, size_t, zmq_msg_size, (const zmq_msg_t* msg), (msg),
                  0)
EGG_LAZY_FUNCTION(g_zmq, int, zmq_msg_more, (const zmq_msg_t* msg), (msg), 0)
EGG_LAZY_FUNCTION(g_zmq, const char*, zmq_strerror, (int error), (error),
                  "libzmq could not be loaded")

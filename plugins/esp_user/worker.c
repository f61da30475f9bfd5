/* Worker threads of the esp_user datapath (one epoll set and packet
 * slots each) and the fds they watch: adapter queues, UDP sockets, raw
 * ESP sockets. */
#include "datapath-private.h"

#include <errno.h>
#include <gio/gio.h>
#include <sys/epoll.h>
#include <unistd.h>

gpointer
dp_worker_main (gpointer data)
{
  DpWorker *w = data;
  Datapath *dp = w->dp;
  struct epoll_event ev[32];

  for (;;)
    {
      const DpSnap *s;
      int n;

      atomic_store (&w->qs, 0); /* quiescent: holds no pointer to anything writers retire */
      n = epoll_wait (w->epfd, ev, G_N_ELEMENTS (ev), -1);
      atomic_store (&w->qs, atomic_load (&dp->epoch));
      if (atomic_load (&dp->stopping))
        break;
      s = atomic_load (&dp->snap);
      for (int i = 0; i < n; i++)
        {
          guint slot = ev[i].data.u64 & 0xffff;
          guint64 id = ev[i].data.u64 >> 16;
          const DpIo *io;

          if (slot >= DP_MAX_IO)
            continue;
          /* The fd may have been detached since epoll_wait returned. */
          io = s->io[slot];
          if (io == NULL || io->id != id)
            continue;
          /* One clock read per batch (vDSO, no syscall) stamps its SAs. */
          w->now_us = g_get_monotonic_time ();
          if (io->kind == DP_IO_ADAPTER)
            dp_adapter_readable (w, s, io);
          else
            dp_socket_readable (w, s, io);
        }
    }
  atomic_store (&w->qs, 0);
  return NULL;
}

DpWorker *
dp_worker_new (Datapath *dp, guint index, GError **error)
{
  DpWorker *w;
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = DP_STOP_SLOT };

  /* Aligned allocation: the struct asks for cache-line alignment. */
  w = g_aligned_alloc0 (1, sizeof *w, 64);
  w->dp = dp;
  w->index = index;
  w->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (w->epfd < 0 || epoll_ctl (w->epfd, EPOLL_CTL_ADD, dp->stop_fd, &ev) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "esp_user: epoll: %s", g_strerror (errno));
      if (w->epfd >= 0)
        close (w->epfd);
      g_aligned_free (w);
      return NULL;
    }
  /* Slots are only touched as far as packets reach: big but mostly virtual. */
  w->mem = g_malloc ((gsize) (DP_BATCH + 1) * DP_SLOT);
  for (guint i = 0; i < DP_BATCH; i++)
    w->slot[i] = w->mem + (gsize) i * DP_SLOT;
  w->spare = w->mem + (gsize) DP_BATCH * DP_SLOT;
  w->gro = datapath_gro_new ();
  return w;
}

void
dp_worker_destroy (DpWorker *w)
{
  if (w == NULL)
    return;
  if (w->epfd >= 0)
    close (w->epfd);
  g_free (w->mem);
  datapath_gro_free (w->gro);
  g_aligned_free (w);
}

DpIo *
dp_io_add (Datapath *dp, DpIoKind kind, int fd, guint worker, GError **error)
{
  DpIo *io;
  struct epoll_event ev = { .events = EPOLLIN };
  guint slot;

  for (slot = 0; slot < DP_MAX_IO && dp->io[slot] != NULL; slot++)
    ;
  if (slot == DP_MAX_IO)
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID, "esp_user: too many fds (%d)",
                   DP_MAX_IO);
      return NULL;
    }
  io = g_new0 (DpIo, 1);
  io->id = ++dp->next_io_id;
  io->slot = slot;
  io->kind = kind;
  io->fd = fd;
  io->worker = worker % dp->n_threads;
  ev.data.u64 = (io->id << 16) | slot;
  if (epoll_ctl (dp->workers[io->worker]->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "esp_user: cannot watch fd %d: %s", fd,
                   g_strerror (errno));
      g_free (io);
      return NULL;
    }
  dp->io[slot] = io;
  return io;
}

void
dp_io_remove (Datapath *dp, DpIo *io)
{
  if (io == NULL)
    return;
  if (epoll_ctl (dp->workers[io->worker]->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
    g_debug ("esp_user: epoll del fd %d: %s", io->fd, g_strerror (errno));
  dp->io[io->slot] = NULL;
  dp_retire (dp, g_free, io);
}

void
dp_socket_buffers (int fd)
{
  int size = DP_SOCK_BUF;

  /* Bursts from GSO need room; FORCE works as root, the plain one caps. */
  if (setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0
      && setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) < 0)
    g_debug ("esp_user: SO_RCVBUF on fd %d: %s", fd, g_strerror (errno));
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0
      && setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0)
    g_debug ("esp_user: SO_SNDBUF on fd %d: %s", fd, g_strerror (errno));
}

int
dp_open_raw (int family, int proto, const char *what)
{
  int fd = socket (family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);

  if (fd < 0)
    g_message ("esp_user: no %s socket (%s): going on without it", what, g_strerror (errno));
  return fd;
}

void
dp_close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* An fd that fails for good would wake the worker forever (level
 * triggered): stop watching it; the core detaches it in time. */
void
dp_io_broken (DpWorker *w, const DpIo *io, int err)
{
  g_warning ("esp_user: fd %d fails (%s): no longer read", io->fd, g_strerror (err));
  dp_count (w->dp, C_SEND_ERRORS);
  if (epoll_ctl (w->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
    g_debug ("esp_user: epoll del fd %d: %s", io->fd, g_strerror (errno));
}

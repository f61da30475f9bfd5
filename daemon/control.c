/* The control socket server: accepts local clients whose peer credentials
 * are root or a member of the control group, reads newline-delimited JSON
 * requests, answers them through DaemonControlOps and streams events. All
 * I/O is non-blocking on the main loop; every buffer is bounded, and a
 * client that misbehaves is dropped without touching the others. */
#include "control.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

G_DEFINE_QUARK (daemon-control-error-quark, daemon_control_error)

struct _ControlClient {
  DaemonControl *ctl;
  int fd;
  guint watch;
  GIOCondition cond;
  ControlReader in;
  GByteArray *out;
  uid_t uid;
  gboolean events;          /* subscribed to events */
  GLogLevelFlags log_level; /* 0 = no log lines */
  gboolean closing;         /* flush, then close */
  gboolean dead;            /* closed; freed when the dispatch is over */
  guint busy;               /* inside a dispatch */
};

typedef struct {
  guint id;
  ControlClient *client;
  DaemonCredentialsFunc fn;
  gpointer user;
} CredRequest;

struct _DaemonControl {
  char *path;
  int fd;
  guint watch;
  gid_t gid;
  const DaemonControlOps *ops;
  gpointer user;
  GPtrArray *clients;       /* ControlClient* */
  GHashTable *requests;     /* id -> CredRequest* */
  guint next_request;
};

static const char *const error_names[] = {
  [DAEMON_CONTROL_ERROR_FAILED] = "failed",
  [DAEMON_CONTROL_ERROR_CONFIG] = "config",
  [DAEMON_CONTROL_ERROR_AUTH] = "auth",
  [DAEMON_CONTROL_ERROR_TIMEOUT] = "timeout",
  [DAEMON_CONTROL_ERROR_NOT_FOUND] = "not-found",
  [DAEMON_CONTROL_ERROR_EXISTS] = "exists",
  [DAEMON_CONTROL_ERROR_MALFORMED] = "malformed",
  [DAEMON_CONTROL_ERROR_PERMISSION] = "permission",
  [DAEMON_CONTROL_ERROR_CANCELLED] = "cancelled",
};

const char *
daemon_control_error_name (const GError *error)
{
  if (error && error->domain == DAEMON_CONTROL_ERROR && error->code >= 0
      && (gsize) error->code < G_N_ELEMENTS (error_names))
    return error_names[error->code];
  return "failed";
}

static void client_close (ControlClient *c);

static void
cred_fail (CredRequest *r, int code, const char *message)
{
  g_autoptr (GError) error = g_error_new_literal (DAEMON_CONTROL_ERROR, code, message);

  r->fn (NULL, error, r->user);
}

static void
client_free (ControlClient *c)
{
  control_reader_clear (&c->in);
  if (c->out)
    {
      if (c->out->len > 0)
        control_wipe (c->out->data, c->out->len);
      g_byte_array_unref (c->out);
    }
  g_free (c);
}

static gboolean on_client_io (gint fd, GIOCondition cond, gpointer data);

static GIOCondition
client_wants (ControlClient *c)
{
  if (c->closing)
    return c->out->len > 0 ? G_IO_OUT : 0;
  return G_IO_IN | (c->out->len > 0 ? G_IO_OUT : 0);
}

/* Inside on_client_io (busy) the watch is settled on the way out. */
static void
client_watch (ControlClient *c)
{
  GIOCondition want = client_wants (c);

  if (c->busy || (c->watch && want == c->cond))
    return;
  if (c->watch)
    g_source_remove (c->watch);
  c->watch = want ? g_unix_fd_add (c->fd, want, on_client_io, c) : 0;
  c->cond = want;
}

/* Writes what the socket takes now; FALSE when the peer is gone. */
static gboolean
client_flush (ControlClient *c)
{
  while (c->out->len > 0)
    {
      ssize_t n = send (c->fd, c->out->data, c->out->len, MSG_DONTWAIT | MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return FALSE;
      control_wipe (c->out->data, (gsize) n);
      g_byte_array_remove_range (c->out, 0, (guint) n);
    }
  return TRUE;
}

void
daemon_control_send (ControlClient *c, JsonObject *msg)
{
  g_autofree char *line = NULL;
  gsize len;

  if (c->dead || c->closing)
    return;
  line = control_msg_encode (msg, &len);
  if (c->out->len + len > DAEMON_CONTROL_MAX_QUEUE)
    {
      g_warning ("control: client (uid %u) does not read its messages; dropping it", (guint) c->uid);
      client_close (c);
      return;
    }
  g_byte_array_append (c->out, (const guint8 *) line, (guint) len);
  control_wipe (line, len);
  if (!client_flush (c))
    {
      client_close (c);
      return;
    }
  client_watch (c);
}

static void
send_error (ControlClient *c, gint64 id, const char *code, const char *message)
{
  g_autoptr (JsonObject) m = control_msg_new ("error");

  if (id >= 0)
    json_object_set_int_member (m, "id", id);
  json_object_set_string_member (m, "code", code);
  json_object_set_string_member (m, "message", message);
  daemon_control_send (c, m);
}

static void
send_gerror (ControlClient *c, gint64 id, const GError *error)
{
  send_error (c, id, daemon_control_error_name (error), error->message);
}

static JsonObject *
result_new (gint64 id)
{
  JsonObject *m = control_msg_new ("result");

  json_object_set_int_member (m, "id", id);
  return m;
}

/* Closes c now (its remaining output is lost); the owner learns first. */
static void
client_close (ControlClient *c)
{
  DaemonControl *ctl = c->ctl;
  GHashTableIter it;
  gpointer v;

  if (c->dead)
    return;
  c->dead = TRUE;
  if (c->watch)
    g_source_remove (c->watch);
  c->watch = 0;
  close (c->fd);
  c->fd = -1;
  /* Requests waiting for this client fail now, not at some timeout. */
  g_hash_table_iter_init (&it, ctl->requests);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      CredRequest *r = v;

      if (r->client == c)
        {
          g_hash_table_iter_steal (&it);
          cred_fail (r, DAEMON_CONTROL_ERROR_CANCELLED, "the client went away");
          g_free (r);
        }
    }
  if (ctl->ops->client_gone)
    ctl->ops->client_gone (ctl->user, c);
  g_ptr_array_remove_fast (ctl->clients, c);
  if (c->busy == 0)
    client_free (c);
}

static GLogLevelFlags
level_from_name (const char *name)
{
  static const struct { const char *name; GLogLevelFlags level; } levels[] = {
    { "error", G_LOG_LEVEL_CRITICAL }, { "warning", G_LOG_LEVEL_WARNING }, { "message", G_LOG_LEVEL_MESSAGE },
    { "info", G_LOG_LEVEL_INFO }, { "debug", G_LOG_LEVEL_DEBUG },
  };

  for (gsize i = 0; name && i < G_N_ELEMENTS (levels); i++)
    if (strcmp (name, levels[i].name) == 0)
      return levels[i].level;
  return 0;
}

static void
handle_credentials (ControlClient *c, gint64 id, JsonObject *msg)
{
  DaemonControl *ctl = c->ctl;
  gint64 rid = control_msg_get_int (msg, "request", -1);
  CredRequest *r = rid > 0 && rid <= G_MAXUINT ? g_hash_table_lookup (ctl->requests, GUINT_TO_POINTER ((guint) rid)) : NULL;
  JsonObject *values = control_msg_get_object (msg, "values");

  if (r == NULL || r->client != c)
    {
      send_error (c, id, "not-found", "no such credential request");
      return;
    }
  g_hash_table_steal (ctl->requests, GUINT_TO_POINTER (r->id));
  if (control_msg_get_bool (msg, "cancel", FALSE) || values == NULL)
    cred_fail (r, DAEMON_CONTROL_ERROR_CANCELLED, "the user cancelled the credential request");
  else
    {
      g_autoptr (GHashTable) answers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      g_autoptr (GList) names = json_object_get_members (values);
      GHashTableIter it;
      gpointer v;

      for (GList *l = names; l; l = l->next)
        {
          const char *value = control_msg_get_string (values, l->data, NULL);

          if (value)
            g_hash_table_insert (answers, g_strdup (l->data), g_strdup (value));
        }
      r->fn (answers, NULL, r->user);
      g_hash_table_iter_init (&it, answers);
      while (g_hash_table_iter_next (&it, NULL, &v))
        control_wipe (v, strlen (v));
    }
  control_msg_wipe_strings (values);
  g_free (r);
  if (id >= 0)
    {
      g_autoptr (JsonObject) res = result_new (id);
      daemon_control_send (c, res);
    }
}

static void
dispatch (ControlClient *c, JsonObject *msg)
{
  DaemonControl *ctl = c->ctl;
  const char *type = control_msg_get_string (msg, "type", "");
  gint64 id = control_msg_get_int (msg, "id", -1);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) res = NULL;

  if (strcmp (type, "credentials") == 0)
    {
      handle_credentials (c, id, msg);
      return;
    }
  if (id < 0)
    {
      send_error (c, -1, "malformed", "a request needs an integer \"id\"");
      return;
    }
  if (strcmp (type, "hello") == 0)
    {
      res = result_new (id);
      json_object_set_string_member (res, "daemon", "modiked " PACKAGE_VERSION);
      json_object_set_int_member (res, "version", CONTROL_VERSION);
    }
  else if (strcmp (type, "upload") == 0)
    {
      const char *xml = control_msg_get_string (msg, "site", NULL);
      const char *name = control_msg_get_string (msg, "name", "site");
      g_autofree char *site = NULL;

      if (xml == NULL)
        g_set_error (&error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_MALFORMED, "upload needs \"site\" (the XML)");
      else if (ctl->ops->upload (ctl->user, c, xml, name, &site, &error))
        {
          res = result_new (id);
          json_object_set_string_member (res, "site", site);
        }
      /* The XML holds the pre-shared key: wipe json-glib's copy too. */
      if (xml != NULL)
        control_wipe ((char *) xml, strlen (xml));
    }
  else if (strcmp (type, "connect") == 0 || strcmp (type, "disconnect") == 0)
    {
      const char *site = control_msg_get_string (msg, "site", NULL);
      gboolean ok;

      if (site == NULL)
        g_set_error (&error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_MALFORMED, "%s needs \"site\"", type);
      else
        {
          ok = type[0] == 'c' ? ctl->ops->connect (ctl->user, c, site, &error)
                              : ctl->ops->disconnect (ctl->user, site, &error);
          if (ok)
            res = result_new (id);
        }
    }
  else if (strcmp (type, "status") == 0 || strcmp (type, "statistics") == 0)
    {
      JsonObject *data = strcmp (type, "status") == 0 ? ctl->ops->status (ctl->user)
                                                      : ctl->ops->statistics (ctl->user);
      g_autoptr (GList) members = json_object_get_members (data);

      res = result_new (id);
      for (GList *l = members; l; l = l->next)
        json_object_set_member (res, l->data, json_node_copy (json_object_get_member (data, l->data)));
      json_object_unref (data);
    }
  else if (strcmp (type, "subscribe") == 0)
    {
      const char *level = control_msg_get_string (msg, "log", NULL);

      if (level && level_from_name (level) == 0)
        g_set_error (&error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_MALFORMED,
                     "unknown log level \"%s\" (error, warning, message, info, debug)", level);
      else
        {
          c->events = control_msg_get_bool (msg, "events", TRUE);
          c->log_level = level_from_name (level);
          res = result_new (id);
        }
    }
  else
    g_set_error (&error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_MALFORMED, "unknown request type \"%s\"", type);

  if (res)
    daemon_control_send (c, res);
  else if (error)
    send_gerror (c, id, error);
}

static void
client_read (ControlClient *c)
{
  guint8 buf[16384];
  g_autoptr (GError) error = NULL;

  /* A bounded amount per wake-up, so that one client cannot starve the
   * engine or the others. */
  for (int round = 0; round < 8 && !c->dead; round++)
    {
      ssize_t n = recv (c->fd, buf, sizeof buf, MSG_DONTWAIT);
      char *line;
      gsize len;

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        {
          client_close (c);
          break;
        }
      if (!control_reader_feed (&c->in, buf, (gsize) n, &error))
        {
          g_warning ("control: client (uid %u): %s; dropping it", (guint) c->uid, error->message);
          send_error (c, -1, "malformed", error->message);
          c->closing = TRUE;
          break;
        }
      control_wipe (buf, (gsize) n);
      while (!c->dead && !c->closing && (line = control_reader_next (&c->in, &len)) != NULL)
        {
          g_autoptr (JsonObject) msg = control_msg_parse (line, len, &error);

          control_wipe (line, len);
          g_free (line);
          if (msg == NULL)
            {
              send_error (c, -1, "malformed", error->message);
              g_clear_error (&error);
              continue;
            }
          dispatch (c, msg);
        }
    }
}

static gboolean
on_client_io (gint fd, GIOCondition cond, gpointer data)
{
  ControlClient *c = data;
  GIOCondition want;

  c->busy++;
  if ((cond & (G_IO_ERR | G_IO_HUP | G_IO_NVAL)) && !(cond & G_IO_IN))
    client_close (c);
  if (!c->dead && (cond & G_IO_OUT) && !client_flush (c))
    client_close (c);
  if (!c->dead && !c->closing && (cond & G_IO_IN))
    client_read (c);
  if (!c->dead && c->closing && c->out->len == 0)
    client_close (c);
  c->busy--;
  if (c->dead)
    {
      /* client_close removed this source already. */
      client_free (c);
      return G_SOURCE_REMOVE;
    }
  want = client_wants (c);
  if (want == c->cond)
    return G_SOURCE_CONTINUE;
  c->watch = 0;
  client_watch (c);
  return G_SOURCE_REMOVE;
}

/* Root, the group's gid as primary group, or a member of the group. */
static gboolean
peer_allowed (DaemonControl *ctl, const struct ucred *cred)
{
  struct passwd pw, *found = NULL;
  char buf[4096];
  gid_t groups[256];
  int n = G_N_ELEMENTS (groups);

  if (cred->uid == 0 || (ctl->gid != 0 && cred->gid == ctl->gid))
    return TRUE;
  if (ctl->gid == 0 || getpwuid_r (cred->uid, &pw, buf, sizeof buf, &found) != 0 || found == NULL)
    return FALSE;
  if (getgrouplist (pw.pw_name, pw.pw_gid, groups, &n) < 0)
    return FALSE;
  for (int i = 0; i < n; i++)
    if (groups[i] == ctl->gid)
      return TRUE;
  return FALSE;
}

static void
refuse (int fd, const char *message)
{
  g_autoptr (JsonObject) m = control_msg_new ("error");
  g_autofree char *line = NULL;
  gsize len;

  json_object_set_string_member (m, "code", "permission");
  json_object_set_string_member (m, "message", message);
  line = control_msg_encode (m, &len);
  /* Best effort: a fresh socket buffer takes one short line. */
  if (send (fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
    g_debug ("control: could not tell a refused client why: %s", g_strerror (errno));
  close (fd);
}

static gboolean
on_accept (gint fd, GIOCondition cond, gpointer data)
{
  DaemonControl *ctl = data;

  for (int i = 0; i < 16; i++)
    {
      int cfd = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      struct ucred cred;
      socklen_t len = sizeof cred;
      ControlClient *c;

      if (cfd < 0)
        break;
      if (getsockopt (cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred)
        {
          close (cfd);
          continue;
        }
      if (!peer_allowed (ctl, &cred))
        {
          struct group gr, *g = NULL;
          char buf[4096];
          g_autofree char *msg = NULL;

          if (getgrgid_r (ctl->gid, &gr, buf, sizeof buf, &g) != 0)
            g = NULL;
          msg = g_strdup_printf ("access refused: uid %u is neither root nor a member of group %s", (guint) cred.uid,
                                 g ? g->gr_name : "root");
          g_message ("control: %s (pid %d)", msg, (int) cred.pid);
          refuse (cfd, msg);
          continue;
        }
      if (ctl->clients->len >= DAEMON_CONTROL_MAX_CLIENTS)
        {
          g_warning ("control: %u clients connected already; refusing another", ctl->clients->len);
          close (cfd);
          continue;
        }
      c = g_new0 (ControlClient, 1);
      c->ctl = ctl;
      c->fd = cfd;
      c->uid = cred.uid;
      c->out = g_byte_array_new ();
      control_reader_init (&c->in);
      g_ptr_array_add (ctl->clients, c);
      client_watch (c);
      g_debug ("control: client uid %u pid %d connected", (guint) cred.uid, (int) cred.pid);
    }
  return G_SOURCE_CONTINUE;
}

DaemonControl *
daemon_control_new (const char *path, gid_t gid, const DaemonControlOps *ops, gpointer user, GError **error)
{
  g_autoptr (DaemonControl) ctl = g_new0 (DaemonControl, 1);
  g_autofree char *dir = g_path_get_dirname (path);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct stat st;

  ctl->fd = -1;
  ctl->gid = gid;
  ctl->ops = ops;
  ctl->user = user;
  ctl->clients = g_ptr_array_new ();
  ctl->requests = g_hash_table_new (NULL, NULL);
  if (strlen (path) >= sizeof sun.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "control socket %s: path too long", path);
      return NULL;
    }
  strcpy (sun.sun_path, path);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "control socket directory %s: %s", dir, g_strerror (e));
      return NULL;
    }
  /* Only a socket may be replaced: a stale one from a daemon that died. */
  if (lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "control socket %s: exists and is not a socket", path);
          return NULL;
        }
      unlink (path);
    }
  ctl->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ctl->fd < 0 || bind (ctl->fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "control socket %s: %s", path, g_strerror (e));
      return NULL;
    }
  ctl->path = g_strdup (path);
  /* Owner: whoever runs modiked (root). */
  if ((gid != getegid () && chown (path, (uid_t) -1, gid) < 0) || chmod (path, 0660) < 0 || listen (ctl->fd, 16) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "control socket %s: %s", path, g_strerror (e));
      return NULL;
    }
  ctl->watch = g_unix_fd_add (ctl->fd, G_IO_IN, on_accept, ctl);
  return g_steal_pointer (&ctl);
}

void
daemon_control_free (DaemonControl *ctl)
{
  if (ctl == NULL)
    return;
  while (ctl->clients->len > 0)
    client_close (ctl->clients->pdata[ctl->clients->len - 1]);
  if (ctl->watch)
    g_source_remove (ctl->watch);
  if (ctl->fd >= 0)
    close (ctl->fd);
  if (ctl->path)
    unlink (ctl->path);
  g_ptr_array_unref (ctl->clients);
  g_hash_table_unref (ctl->requests);
  g_free (ctl->path);
  g_free (ctl);
}

void
daemon_control_broadcast (DaemonControl *ctl, JsonObject *msg, ControlClient *skip)
{
  /* Backwards: a client dropped on overflow leaves the array. */
  for (guint i = ctl->clients->len; i > 0; i--)
    {
      ControlClient *c = ctl->clients->pdata[i - 1];

      if (c->events && c != skip)
        daemon_control_send (c, msg);
    }
}

void
daemon_control_log (DaemonControl *ctl, GLogLevelFlags level, const char *domain, const char *message)
{
  static const char *const names[] = { "error", "critical", "warning", "message", "info", "debug" };
  g_autoptr (JsonObject) m = NULL;
  guint bit = 0;

  for (guint i = ctl->clients->len; i > 0; i--)
    {
      ControlClient *c = ctl->clients->pdata[i - 1];

      if (c->log_level == 0 || (level & G_LOG_LEVEL_MASK) > c->log_level)
        continue;
      if (m == NULL)
        {
          while (bit < G_N_ELEMENTS (names) - 1 && !(level & (G_LOG_LEVEL_ERROR << bit)))
            bit++;
          m = control_msg_new ("event");
          json_object_set_string_member (m, "event", "log");
          json_object_set_string_member (m, "level", names[bit]);
          json_object_set_string_member (m, "domain", domain ? domain : "");
          json_object_set_string_member (m, "message", message);
        }
      daemon_control_send (c, m);
    }
}

guint
daemon_control_count_clients (DaemonControl *ctl)
{
  return ctl->clients->len;
}

guint
daemon_control_request_credentials (ControlClient *c, const char *site, const char *prompt,
                                    const DaemonCredentialField *fields, guint n_fields, DaemonCredentialsFunc fn,
                                    gpointer user)
{
  DaemonControl *ctl = c->ctl;
  CredRequest *r;
  g_autoptr (JsonObject) m = NULL;
  JsonArray *a;

  if (c->dead || c->closing)
    {
      g_autoptr (GError) error = g_error_new_literal (DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_CANCELLED,
                                                      "the client went away");
      fn (NULL, error, user);
      return 0;
    }
  r = g_new0 (CredRequest, 1);
  m = control_msg_new ("need-credentials");
  a = json_array_new ();
  r->id = ++ctl->next_request ? ctl->next_request : ++ctl->next_request;
  r->client = c;
  r->fn = fn;
  r->user = user;
  g_hash_table_insert (ctl->requests, GUINT_TO_POINTER (r->id), r);
  json_object_set_int_member (m, "request", r->id);
  json_object_set_string_member (m, "site", site);
  if (prompt)
    json_object_set_string_member (m, "prompt", prompt);
  for (guint i = 0; i < n_fields; i++)
    {
      JsonObject *f = json_object_new ();

      json_object_set_string_member (f, "name", fields[i].name);
      json_object_set_string_member (f, "label", fields[i].label ? fields[i].label : fields[i].name);
      json_object_set_boolean_member (f, "secret", fields[i].secret);
      json_array_add_object_element (a, f);
    }
  json_object_set_array_member (m, "fields", a);
  /* The id is returned even if the send drops the client: then fn has
   * already run with an error and the id is unknown (cancel is a no-op). */
  daemon_control_send (c, m);
  return r->id;
}

void
daemon_control_cancel_credentials (DaemonControl *ctl, guint request)
{
  CredRequest *r = g_hash_table_lookup (ctl->requests, GUINT_TO_POINTER (request));

  if (r == NULL)
    return;
  g_hash_table_steal (ctl->requests, GUINT_TO_POINTER (request));
  {
    g_autoptr (JsonObject) m = control_msg_new ("cancel-credentials");

    json_object_set_int_member (m, "request", request);
    daemon_control_send (r->client, m);
  }
  cred_fail (r, DAEMON_CONTROL_ERROR_CANCELLED, "the credential request was cancelled");
  g_free (r);
}

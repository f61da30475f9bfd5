/* modike: the command-line client of modiked's control socket
 * (docs/control-protocol.md). connect uploads a site, connects it, prints
 * each stage as it happens and stays attached until Ctrl-C or the end of
 * the connection; disconnect and status do what they say. The exit codes
 * are documented in docs/user-guide.md and below. */
#include "control-msg.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/modike/modiked.sock"

enum {
  EXIT_OK = 0,
  EXIT_FAILED = 1,        /* anything not listed below */
  EXIT_USAGE = 2,
  EXIT_CONFIG = 3,        /* the daemon refused the site config */
  EXIT_AUTH = 4,          /* authentication failed */
  EXIT_TIMEOUT = 5,       /* the gateway did not answer */
  EXIT_NO_DAEMON = 6,     /* no modiked on the control socket */
  EXIT_ENDED = 7,         /* the connection ended: deleted by the peer, disconnected elsewhere, daemon stopped */
  EXIT_ACCESS = 8,        /* the daemon refused us (not root, not in its group) */
};

typedef struct {
  int fd;
  ControlReader in;
  gint64 next_id;
  const char *site;          /* connect: the site we are attached to */
  const char *cred_file;
  int exit_code;
  gboolean done;
} Conn;

static int sig_pipe[2] = { -1, -1 };

static void
on_signal (int sig)
{
  int saved = errno;
  char c = (char) sig;

  if (write (sig_pipe[1], &c, 1) < 0)
    {
      /* The pipe is full: a signal is pending already. */
    }
  errno = saved;
}

static int
code_to_exit (const char *code)
{
  static const struct { const char *code; int exit; } map[] = {
    { "config", EXIT_CONFIG }, { "exists", EXIT_CONFIG }, { "auth", EXIT_AUTH }, { "timeout", EXIT_TIMEOUT },
    { "permission", EXIT_ACCESS }, { "closed", EXIT_ENDED }, { "disconnected", EXIT_ENDED },
    { "stopped", EXIT_ENDED },
  };

  for (gsize i = 0; code && i < G_N_ELEMENTS (map); i++)
    if (strcmp (code, map[i].code) == 0)
      return map[i].exit;
  return EXIT_FAILED;
}

static int
conn_open (Conn *c, const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };

  c->fd = -1;
  control_reader_init (&c->in);
  if (strlen (path) >= sizeof sun.sun_path)
    {
      g_printerr ("modike: socket path too long: %s\n", path);
      return EXIT_USAGE;
    }
  strcpy (sun.sun_path, path);
  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0 || connect (c->fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    {
      int e = errno;

      if (e == EACCES || e == EPERM)
        {
          g_printerr ("modike: access to %s refused: run as root or as a member of modiked's control group\n", path);
          return EXIT_ACCESS;
        }
      g_printerr ("modike: modiked is not running (no control socket at %s: %s)\n", path, g_strerror (e));
      return EXIT_NO_DAEMON;
    }
  return EXIT_OK;
}

static void
conn_close (Conn *c)
{
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
  control_reader_clear (&c->in);
}

static gboolean
conn_send (Conn *c, JsonObject *msg)
{
  gsize len, off = 0;
  g_autofree char *line = control_msg_encode (msg, &len);
  gboolean ok = TRUE;

  while (off < len)
    {
      ssize_t n = send (c->fd, line + off, len - off, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          ok = FALSE;
          break;
        }
      off += (gsize) n;
    }
  control_wipe (line, len);
  return ok;
}

/* The next message; NULL at the end of the stream or on a signal (when
 * stop is not NULL, *stop is set). */
static JsonObject *
conn_read (Conn *c, gboolean *stop)
{
  for (;;)
    {
      gsize len;
      g_autofree char *line = control_reader_next (&c->in, &len);
      g_autoptr (GError) error = NULL;
      struct pollfd p[2] = { { c->fd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
      guint8 buf[16384];
      ssize_t n;

      if (line)
        {
          JsonObject *msg = control_msg_parse (line, len, &error);

          if (msg)
            return msg;
          g_printerr ("modike: bad message from modiked: %s\n", error->message);
          continue;
        }
      if (poll (p, stop ? 2 : 1, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          return NULL;
        }
      if (stop && (p[1].revents & POLLIN))
        {
          char sig;

          if (read (sig_pipe[0], &sig, 1) == 1)
            *stop = TRUE;
          return NULL;
        }
      n = recv (c->fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return NULL;
      if (!control_reader_feed (&c->in, buf, (gsize) n, &error))
        {
          g_printerr ("modike: %s\n", error->message);
          return NULL;
        }
    }
}

/* ---- credentials: a file, the environment, or the terminal ---- */

static char *
from_file (const char *path, const char *field)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  char *found = NULL;

  if (path == NULL || !g_file_get_contents (path, &text, &len, NULL))
    return NULL;
  {
    g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

    for (guint i = 0; lines[i] && !found; i++)
      {
        char *eq = strchr (lines[i], '=');

        if (eq && (gsize) (eq - lines[i]) == strlen (field) && strncmp (lines[i], field, strlen (field)) == 0)
          found = g_strdup (eq + 1);
      }
    for (guint i = 0; lines[i]; i++)
      control_wipe (lines[i], strlen (lines[i]));
  }
  control_wipe (text, len);
  return found;
}

static char *
from_env (const char *field)
{
  g_autofree char *name = g_ascii_strup (field, -1);
  g_autofree char *var = NULL;
  const char *v;

  g_strdelimit (name, "-.", '_');
  var = g_strconcat ("MODIKE_", name, NULL);
  v = g_getenv (var);
  return v ? g_strdup (v) : NULL;
}

/* Reads a line from the terminal, without echo for secrets. */
static char *
from_tty (const char *label, gboolean secret)
{
  int fd = open ("/dev/tty", O_RDWR | O_CLOEXEC);
  struct termios old, quiet;
  gboolean restore = FALSE, complete = FALSE;
  GString *s;
  char ch;

  if (fd < 0)
    return NULL;
  /* Echo goes off before the prompt shows, and without flushing input:
   * whatever is typed once the prompt is there is read, never echoed. */
  if (secret && tcgetattr (fd, &old) == 0)
    {
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t) ECHO;
      quiet.c_lflag |= ECHONL;
      restore = tcsetattr (fd, TCSANOW, &quiet) == 0;
    }
  if (write (fd, label, strlen (label)) < 0 || write (fd, ": ", 2) < 0)
    {
      if (restore)
        tcsetattr (fd, TCSANOW, &old);
      close (fd);
      return NULL;
    }
  s = g_string_new (NULL);
  /* Only a complete line counts: Ctrl-C (EINTR), end of file or an
   * overlong line give nothing rather than half a password. */
  for (;;)
    {
      if (read (fd, &ch, 1) != 1 || s->len >= 1024)
        break;
      if (ch == '\n')
        {
          complete = TRUE;
          break;
        }
      g_string_append_c (s, ch);
    }
  if (restore)
    tcsetattr (fd, TCSANOW, &old);
  close (fd);
  if (!complete)
    {
      control_wipe (s->str, s->len);
      g_string_free (s, TRUE);
      return NULL;
    }
  return g_string_free (s, FALSE);
}

static void
answer_credentials (Conn *c, JsonObject *req)
{
  JsonArray *fields = control_msg_get_array (req, "fields");
  g_autoptr (JsonObject) ans = control_msg_new ("credentials");
  JsonObject *values = json_object_new ();
  const char *prompt = control_msg_get_string (req, "prompt", NULL);
  gboolean complete = TRUE;

  json_object_set_int_member (ans, "request", control_msg_get_int (req, "request", 0));
  if (prompt && isatty (STDERR_FILENO))
    g_printerr ("%s\n", prompt);
  for (guint i = 0; fields && i < json_array_get_length (fields); i++)
    {
      JsonNode *fn = json_array_get_element (fields, i);
      JsonObject *f = JSON_NODE_HOLDS_OBJECT (fn) ? json_node_get_object (fn) : NULL;
      const char *name = control_msg_get_string (f, "name", NULL);
      const char *label = control_msg_get_string (f, "label", name);
      char *v;

      if (name == NULL)
        continue;
      v = from_file (c->cred_file, name);
      if (v == NULL)
        v = from_env (name);
      if (v == NULL)
        v = from_tty (label, control_msg_get_bool (f, "secret", TRUE));
      if (v == NULL)
        {
          g_autofree char *var = g_ascii_strup (name, -1);

          g_printerr ("modike: modiked asks for \"%s\" and got no answer (no terminal, or cancelled): give it in the "
                      "--credentials file or as MODIKE_%s\n", name, var);
          complete = FALSE;
          break;
        }
      json_object_set_string_member (values, name, v);
      control_wipe (v, strlen (v));
      g_free (v);
    }
  if (complete)
    json_object_set_object_member (ans, "values", values);
  else
    {
      control_msg_wipe_strings (values);
      json_object_unref (values);
      json_object_set_boolean_member (ans, "cancel", TRUE);
    }
  conn_send (c, ans);
  if (complete)
    control_msg_wipe_strings (values);
}

/* ---- events ---- */

/* Text from the daemon that a peer may have chosen (the banner, messages
 * quoting it) for the terminal: control characters, escape sequences
 * among them, are shown as \xNN (\u00NN for C1); `lines` keeps newline
 * and tab. */
static char *
terminal_text (const char *text, gboolean lines)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  GString *s = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (lines && (c == '\n' || c == '\t'))
        g_string_append_c (s, (char) c);
      else if (c < 0x20 || c == 0x7f)
        g_string_append_printf (s, "\\x%02x", c);
      else if (c >= 0x80 && c < 0xa0)
        g_string_append_printf (s, "\\u%04x", c);
      else
        g_string_append_unichar (s, c);
    }
  return g_string_free (s, FALSE);
}

static void
print_stage (JsonObject *m)
{
  const char *stage = control_msg_get_string (m, "stage", "?");
  const char *state = control_msg_get_string (m, "state", "?");
  gint64 ms = control_msg_get_int (m, "elapsed_ms", -1);
  const char *message = control_msg_get_string (m, "message", NULL);
  g_autofree char *elapsed = ms >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT ".%03d s", ms / 1000, (int) (ms % 1000))
                                     : g_strdup ("");

  g_autofree char *shown = terminal_text (message != NULL ? message : "", FALSE);

  printf ("%-8s %-7s %10s%s%s\n", stage, state, elapsed, message ? "  " : "", shown);
  fflush (stdout);
}

/* Handles a message that is not the answer we wait for. */
static void
handle_async (Conn *c, JsonObject *m)
{
  const char *type = control_msg_get_string (m, "type", "");
  const char *event = control_msg_get_string (m, "event", "");
  const char *site = control_msg_get_string (m, "site", "");

  if (strcmp (type, "need-credentials") == 0)
    answer_credentials (c, m);
  else if (strcmp (type, "event") != 0 || c->site == NULL || strcmp (site, c->site) != 0)
    return;
  else if (strcmp (event, "stage") == 0)
    print_stage (m);
  else if (strcmp (event, "banner") == 0)
    {
      g_autofree char *text = terminal_text (control_msg_get_string (m, "text", ""), TRUE);

      printf ("%s\n", text);
    }
  else if (strcmp (event, "detached") == 0)
    {
      const char *code = control_msg_get_string (m, "code", "failed");
      g_autofree char *text = terminal_text (control_msg_get_string (m, "message", code), FALSE);

      printf ("detached: %s\n", text);
      fflush (stdout);
      c->exit_code = code_to_exit (code);
      c->done = TRUE;
    }
}

/* Sends a request and waits for its result (returned) or error (printed;
 * *exit_code set). Events meanwhile go to handle_async. */
static JsonObject *
request (Conn *c, JsonObject *req, int *exit_code)
{
  gint64 id = ++c->next_id;

  json_object_set_int_member (req, "id", id);
  /* On a send failure, the reason (an access refusal) may still wait to be
   * read. */
  if (!conn_send (c, req))
    g_debug ("send failed: %s", g_strerror (errno));
  for (;;)
    {
      g_autoptr (JsonObject) m = conn_read (c, NULL);
      const char *type;

      if (m == NULL)
        {
          g_printerr ("modike: modiked closed the connection\n");
          *exit_code = EXIT_ENDED;
          return NULL;
        }
      type = control_msg_get_string (m, "type", "");
      if (strcmp (type, "error") == 0 && control_msg_get_int (m, "id", id) == id)
        {
          const char *code = control_msg_get_string (m, "code", "failed");

          g_printerr ("modike: %s\n", control_msg_get_string (m, "message", code));
          *exit_code = code_to_exit (code);
          return NULL;
        }
      if (strcmp (type, "result") == 0 && control_msg_get_int (m, "id", -1) == id)
        return g_steal_pointer (&m);
      handle_async (c, m);
    }
}

static gboolean
hello (Conn *c, int *exit_code)
{
  g_autoptr (JsonObject) req = control_msg_new ("hello");
  g_autoptr (JsonObject) res = NULL;

  json_object_set_string_member (req, "client", "modike " PACKAGE_VERSION);
  res = request (c, req, exit_code);
  return res != NULL;
}

/* ---- commands ---- */

static int
cmd_connect (Conn *c, const char *file)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *label = g_path_get_basename (file);
  g_autofree char *site = NULL;
  g_autoptr (JsonObject) req = NULL;
  g_autoptr (JsonObject) res = NULL;
  gsize len = 0;
  int rc = EXIT_OK;

  if (!g_file_get_contents (file, &xml, &len, &error))
    {
      g_printerr ("modike: %s\n", error->message);
      return EXIT_CONFIG;
    }
  if (!hello (c, &rc))
    return rc;
  req = control_msg_new ("upload");
  json_object_set_string_member (req, "name", label);
  json_object_set_string_member (req, "site", xml);
  control_wipe (xml, len);
  res = request (c, req, &rc);
  control_msg_wipe_strings (req);   /* the site holds its pre-shared key */
  if (res == NULL)
    return rc;
  site = g_strdup (control_msg_get_string (res, "site", "?"));
  c->site = site;
  g_clear_pointer (&req, json_object_unref);
  g_clear_pointer (&res, json_object_unref);
  req = control_msg_new ("connect");
  json_object_set_string_member (req, "site", site);
  res = request (c, req, &rc);
  if (res == NULL)
    return rc;
  printf ("connecting to %s\n", site);
  fflush (stdout);
  while (!c->done)
    {
      gboolean stop = FALSE;
      g_autoptr (JsonObject) m = conn_read (c, &stop);

      if (stop)
        {
          g_autoptr (JsonObject) dreq = control_msg_new ("disconnect");
          g_autoptr (JsonObject) dres = NULL;

          json_object_set_string_member (dreq, "site", site);
          dres = request (c, dreq, &rc);
          if (dres == NULL)
            return rc;
          printf ("disconnected\n");
          return EXIT_OK;
        }
      if (m == NULL)
        {
          g_printerr ("modike: modiked closed the connection\n");
          return EXIT_ENDED;
        }
      handle_async (c, m);
    }
  return c->exit_code;
}

static int
cmd_disconnect (Conn *c, const char *site)
{
  g_autoptr (JsonObject) req = control_msg_new ("disconnect");
  g_autoptr (JsonObject) res = NULL;
  int rc = EXIT_OK;

  if (!hello (c, &rc))
    return rc;
  json_object_set_string_member (req, "site", site);
  res = request (c, req, &rc);
  if (res == NULL)
    return rc;
  printf ("%s disconnected\n", site);
  return EXIT_OK;
}

static const char *
str_or (JsonObject *o, const char *member, const char *def)
{
  return control_msg_get_string (o, member, def);
}

static char *
bytes_text (JsonObject *o)
{
  if (!json_object_has_member (o, "bytes_in"))
    return g_strdup ("-");
  return g_strdup_printf ("%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, control_msg_get_int (o, "bytes_in", 0),
                          control_msg_get_int (o, "bytes_out", 0));
}

/* One row per SA: peer, kind, state, algorithms, lifetime, bytes in/out;
 * then the SA's policy instances (mode config): action, local <-> remote. */
static void
add_rows (GPtrArray *rows, JsonObject *ike)
{
  JsonArray *children = control_msg_get_array (ike, "children");
  JsonArray *policies = control_msg_get_array (ike, "policies");
  char **row = g_new0 (char *, 7);

  row[0] = g_strdup (str_or (ike, "peer", "?"));
  row[1] = g_strdup ("IKE");
  row[2] = g_strdup (str_or (ike, "state", "?"));
  row[3] = g_strdup (str_or (ike, "algorithms", "?"));
  row[4] = g_strdup_printf ("%" G_GINT64_FORMAT "s", control_msg_get_int (ike, "lifetime", 0));
  row[5] = g_strdup ("-");
  g_ptr_array_add (rows, row);
  for (guint i = 0; children && i < json_array_get_length (children); i++)
    {
      JsonNode *n = json_array_get_element (children, i);
      JsonObject *esp = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;

      if (esp == NULL)
        continue;
      row = g_new0 (char *, 7);
      row[0] = g_strdup (str_or (esp, "peer", "?"));
      row[1] = g_strdup ("ESP");
      row[2] = g_strdup_printf ("%s/%s", str_or (esp, "spi_in", "?"), str_or (esp, "spi_out", "?"));
      row[3] = g_strdup (str_or (esp, "algorithms", "?"));
      row[4] = g_strdup_printf ("%" G_GINT64_FORMAT "s", control_msg_get_int (esp, "lifetime", 0));
      row[5] = bytes_text (esp);
      g_ptr_array_add (rows, row);
    }
  for (guint i = 0; policies && i < json_array_get_length (policies); i++)
    {
      JsonNode *n = json_array_get_element (policies, i);
      JsonObject *pol = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;

      if (pol == NULL)
        continue;
      row = g_new0 (char *, 7);
      row[0] = g_strdup (str_or (ike, "peer", "?"));
      row[1] = g_strdup ("POLICY");
      row[2] = g_strdup (str_or (pol, "action", "?"));
      row[3] = g_strdup_printf ("%s <-> %s", str_or (pol, "local", "?"), str_or (pol, "remote", "?"));
      row[4] = g_strdup ("-");
      row[5] = g_strdup ("-");
      g_ptr_array_add (rows, row);
    }
}

static int
cmd_status (Conn *c)
{
  static const char *const head[] = { "PEER", "SA", "STATE/SPIS", "ALGORITHMS", "LIFETIME", "BYTES IN/OUT" };
  g_autoptr (JsonObject) req = control_msg_new ("status");
  g_autoptr (JsonObject) res = NULL;
  g_autoptr (GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  JsonArray *sas;
  int width[6];
  int rc = EXIT_OK;

  if (!hello (c, &rc))
    return rc;
  res = request (c, req, &rc);
  if (res == NULL)
    return rc;
  sas = control_msg_get_array (res, "sas");
  for (guint i = 0; sas && i < json_array_get_length (sas); i++)
    {
      JsonNode *n = json_array_get_element (sas, i);

      if (JSON_NODE_HOLDS_OBJECT (n))
        add_rows (rows, json_node_get_object (n));
    }
  for (int k = 0; k < 6; k++)
    {
      width[k] = (int) strlen (head[k]);
      for (guint i = 0; i < rows->len; i++)
        width[k] = MAX (width[k], (int) strlen (((char **) rows->pdata[i])[k]));
    }
  for (int k = 0; k < 6; k++)
    printf ("%-*s%s", k < 5 ? width[k] : 0, head[k], k < 5 ? "  " : "\n");
  for (guint i = 0; i < rows->len; i++)
    for (int k = 0; k < 6; k++)
      printf ("%-*s%s", k < 5 ? width[k] : 0, ((char **) rows->pdata[i])[k], k < 5 ? "  " : "\n");
  if (rows->len == 0)
    printf ("(no security associations)\n");
  return EXIT_OK;
}

static void
usage (void)
{
  g_printerr ("usage: modike [--socket PATH] connect SITE-FILE [--credentials FILE]\n"
              "       modike [--socket PATH] disconnect SITE\n"
              "       modike [--socket PATH] status\n"
              "exit codes: 0 ok, 1 failed, 2 usage, 3 config refused, 4 authentication failed,\n"
              "            5 timeout/unreachable, 6 daemon not running, 7 connection ended, 8 access refused\n");
}

int
main (int argc, char **argv)
{
  const char *socket_path = g_getenv ("MODIKE_SOCKET");
  const char *cmd = NULL, *arg = NULL;
  Conn c = { .fd = -1 };
  struct sigaction sa = { 0 };
  int rc;

  setlocale (LC_ALL, "");
  if (socket_path == NULL)
    socket_path = DEFAULT_SOCKET;
  for (int i = 1; i < argc; i++)
    {
      if ((strcmp (argv[i], "--socket") == 0 || strcmp (argv[i], "-s") == 0) && i + 1 < argc)
        socket_path = argv[++i];
      else if (g_str_has_prefix (argv[i], "--socket="))
        socket_path = argv[i] + strlen ("--socket=");
      else if (strcmp (argv[i], "--credentials") == 0 && i + 1 < argc)
        c.cred_file = argv[++i];
      else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
        {
          usage ();
          return EXIT_OK;
        }
      else if (argv[i][0] == '-')
        {
          g_printerr ("modike: unknown option %s\n", argv[i]);
          usage ();
          return EXIT_USAGE;
        }
      else if (cmd == NULL)
        cmd = argv[i];
      else if (arg == NULL)
        arg = argv[i];
      else
        {
          usage ();
          return EXIT_USAGE;
        }
    }
  if (cmd == NULL || (strcmp (cmd, "status") != 0 && arg == NULL)
      || (strcmp (cmd, "status") != 0 && strcmp (cmd, "connect") != 0 && strcmp (cmd, "disconnect") != 0))
    {
      usage ();
      return EXIT_USAGE;
    }
  if (pipe2 (sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return EXIT_FAILED;
  sa.sa_handler = on_signal;
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  rc = conn_open (&c, socket_path);
  if (rc != EXIT_OK)
    return rc;
  if (strcmp (cmd, "connect") == 0)
    rc = cmd_connect (&c, arg);
  else if (strcmp (cmd, "disconnect") == 0)
    rc = cmd_disconnect (&c, arg);
  else
    rc = cmd_status (&c);
  conn_close (&c);
  return rc;
}

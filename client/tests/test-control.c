/* Suite control: the control protocol's codec (well-formed and hostile
 * input), the status conversion, and the server with fake operations
 * driven by the real modike client: upload, connect, a credential request
 * answered from the environment or a file, events, and the detach. */
#include "control.h"
#include "daemon.h"

#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <glib-unix.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

/* ---- codec ---- */

static void
test_codec_roundtrip (void)
{
  g_autoptr (JsonObject) m = control_msg_new ("upload");
  g_autoptr (JsonObject) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *line = NULL;
  gsize len;

  json_object_set_int_member (m, "id", 7);
  json_object_set_string_member (m, "site", "<modike>\n  <peer name=\"gw\"/>\n</modike>\n");
  line = control_msg_encode (m, &len);
  g_assert_cmpuint (len, ==, strlen (line));
  g_assert_true (line[len - 1] == '\n');
  g_assert_null (memchr (line, '\n', len - 1));   /* one line, newlines escaped */
  back = control_msg_parse (line, len - 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (control_msg_get_string (back, "type", NULL), ==, "upload");
  g_assert_cmpint (control_msg_get_int (back, "id", -1), ==, 7);
  g_assert_cmpstr (control_msg_get_string (back, "site", NULL), ==, "<modike>\n  <peer name=\"gw\"/>\n</modike>\n");
  /* Wrong types give the default. */
  g_assert_cmpint (control_msg_get_int (back, "site", -1), ==, -1);
  g_assert_null (control_msg_get_string (back, "id", NULL));
  g_assert_true (control_msg_get_bool (back, "id", TRUE));
  g_assert_null (control_msg_get_object (back, "site"));
  g_assert_null (control_msg_get_array (back, "nothing"));
}

static void
test_codec_malformed (void)
{
  static const struct { const char *text; int code; } bad[] = {
    { "", CONTROL_ERROR_MALFORMED },
    { "not json", CONTROL_ERROR_MALFORMED },
    { "[1,2,3]", CONTROL_ERROR_MALFORMED },
    { "\"string\"", CONTROL_ERROR_MALFORMED },
    { "{\"v\":1}", CONTROL_ERROR_MALFORMED },
    { "{\"v\":1,\"type\":5}", CONTROL_ERROR_MALFORMED },
    { "{\"type\":\"hello\"}", CONTROL_ERROR_VERSION },
    { "{\"v\":2,\"type\":\"hello\"}", CONTROL_ERROR_VERSION },
    { "{\"v\":\"1\",\"type\":\"hello\"}", CONTROL_ERROR_VERSION },
    { "{\"v\":1,\"type\":\"hello\"", CONTROL_ERROR_MALFORMED },
    { "{\"v\":1,\"type\":\"hello\",\"x\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", CONTROL_ERROR_MALFORMED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (JsonObject) m = control_msg_parse (bad[i].text, strlen (bad[i].text), &error);

      g_assert_null (m);
      g_assert_error (error, CONTROL_ERROR, bad[i].code);
    }
  /* A NUL inside, brackets inside a string (not nesting), too long. */
  {
    const char nul[] = "{\"v\":1,\"type\":\"he\0llo\"}";
    const char *brackets = "{\"v\":1,\"type\":\"hello\",\"s\":\"[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}";
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonObject) m = control_msg_parse (nul, sizeof nul - 1, &error);
    g_autoptr (JsonObject) ok = NULL;
    g_autofree char *big = g_malloc0 (CONTROL_MAX_LINE + 2);

    g_assert_null (m);
    g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED);
    g_clear_error (&error);
    ok = control_msg_parse (brackets, strlen (brackets), &error);
    g_assert_no_error (error);
    g_assert_nonnull (ok);
    memset (big, ' ', CONTROL_MAX_LINE + 1);
    g_assert_null (control_msg_parse (big, CONTROL_MAX_LINE + 1, &error));
    g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_TOO_LONG);
  }
}

static void
test_codec_reader (void)
{
  ControlReader r;
  g_autoptr (GError) error = NULL;
  g_autofree char *a = NULL, *b = NULL, *none = NULL;
  g_autofree char *big = g_malloc (CONTROL_MAX_LINE + 10);
  gsize len;

  control_reader_init (&r);
  g_assert_true (control_reader_feed (&r, (const guint8 *) "{\"v\":1,", 7, &error));
  g_assert_null (control_reader_next (&r, &len));
  g_assert_true (control_reader_feed (&r, (const guint8 *) "\"type\":\"x\"}\n{\"v\"", 16, &error));
  a = control_reader_next (&r, &len);
  g_assert_cmpstr (a, ==, "{\"v\":1,\"type\":\"x\"}");
  g_assert_cmpuint (len, ==, strlen (a));
  g_assert_null (control_reader_next (&r, &len));
  g_assert_true (control_reader_feed (&r, (const guint8 *) ":1}\n\n", 5, &error));
  b = control_reader_next (&r, &len);
  g_assert_cmpstr (b, ==, "{\"v\":1}");
  none = control_reader_next (&r, &len);  /* the empty line */
  g_assert_cmpstr (none, ==, "");
  /* An unterminated line past the limit is refused. */
  memset (big, 'x', CONTROL_MAX_LINE + 10);
  g_assert_false (control_reader_feed (&r, (const guint8 *) big, CONTROL_MAX_LINE + 10, &error));
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_TOO_LONG);
  control_reader_clear (&r);
}

static void
test_status_json (void)
{
  const char *text =
    "IKE gw ESTABLISHED i=0123456789abcdef r=fedcba9876543210 aes128-sha256-modp2048 main initiator life=28800s\n"
    "  ESP gw in=c1a2b3c4 out=c4b3a2c1 aes128-sha256 tunnel udp-encap pfs=modp2048 life=3600s packets=120/118 "
    "bytes=15360/15104 drops=2\n"
    "  ESP gw in=00000001 out=00000002 aes256gcm16 transport pfs=none life=600s\n"
    "  POLICY gw vpn@10.1.0.0/16 protect local=10.99.1.10 remote=10.1.0.0-10.1.255.255\n"
    "IKE other CONNECTING i=1111111111111111 r=0000000000000000 none-none-none aggressive responder life=0s\n"
    "garbage line\n";
  g_autoptr (JsonObject) st = daemon_status_json (text);
  JsonArray *sas = json_object_get_array_member (st, "sas");
  JsonObject *gw, *esp, *esp2;
  JsonArray *children;

  g_assert_cmpuint (json_array_get_length (sas), ==, 2);
  gw = json_array_get_object_element (sas, 0);
  g_assert_cmpstr (json_object_get_string_member (gw, "peer"), ==, "gw");
  g_assert_cmpstr (json_object_get_string_member (gw, "state"), ==, "ESTABLISHED");
  g_assert_cmpstr (json_object_get_string_member (gw, "icookie"), ==, "0123456789abcdef");
  g_assert_cmpstr (json_object_get_string_member (gw, "algorithms"), ==, "aes128-sha256-modp2048");
  g_assert_cmpstr (json_object_get_string_member (gw, "role"), ==, "initiator");
  g_assert_cmpint (json_object_get_int_member (gw, "lifetime"), ==, 28800);
  children = json_object_get_array_member (gw, "children");
  g_assert_cmpuint (json_array_get_length (children), ==, 2);
  esp = json_array_get_object_element (children, 0);
  g_assert_cmpstr (json_object_get_string_member (esp, "spi_in"), ==, "c1a2b3c4");
  g_assert_cmpstr (json_object_get_string_member (esp, "encapsulation"), ==, "udp-encap");
  g_assert_cmpstr (json_object_get_string_member (esp, "pfs"), ==, "modp2048");
  g_assert_cmpint (json_object_get_int_member (esp, "bytes_in"), ==, 15360);
  g_assert_cmpint (json_object_get_int_member (esp, "packets_out"), ==, 118);
  g_assert_cmpint (json_object_get_int_member (esp, "drops"), ==, 2);
  esp2 = json_array_get_object_element (children, 1);
  g_assert_cmpstr (json_object_get_string_member (esp2, "mode"), ==, "transport");
  g_assert_cmpstr (json_object_get_string_member (esp2, "encapsulation"), ==, "none");
  g_assert_false (json_object_has_member (esp2, "bytes_in"));
  {
    JsonArray *pol = json_object_get_array_member (gw, "policies");
    JsonObject *p0;

    g_assert_nonnull (pol);
    g_assert_cmpuint (json_array_get_length (pol), ==, 1);
    p0 = json_array_get_object_element (pol, 0);
    g_assert_cmpstr (json_object_get_string_member (p0, "name"), ==, "vpn@10.1.0.0/16");
    g_assert_cmpstr (json_object_get_string_member (p0, "action"), ==, "protect");
    g_assert_cmpstr (json_object_get_string_member (p0, "local"), ==, "10.99.1.10");
    g_assert_cmpstr (json_object_get_string_member (p0, "remote"), ==, "10.1.0.0-10.1.255.255");
    g_assert_false (json_object_has_member (json_array_get_object_element (sas, 1), "policies"));
  }
}

/* ---- the server with fake operations and the real client ---- */

typedef struct {
  char *dir;
  char *path;
  DaemonControl *ctl;
  GMainLoop *loop;
  ControlClient *attached;
  char *site;
  char *username, *password;
  gboolean cred_error;
  guint gone;
  gboolean end_on_answer;   /* after the credentials: detach with code */
  const char *end_code;
  const char *banner;        /* sent after phase 2, when set */
  GSpawnChildSetupFunc child_setup;
  gpointer child_data;
  GString *pty_out;          /* what the client wrote to its terminal */
  guint pty_answered;
  guint pty_watch;
} Fixture;

static gboolean
fake_upload (gpointer user, ControlClient *c, const char *xml, const char *label, char **site, GError **error)
{
  Fixture *f = user;

  if (strstr (xml, "<peer") == NULL)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_CONFIG, "%s:1: no <peer>", label);
      return FALSE;
    }
  f->site = g_strdup ("gw");
  *site = g_strdup (f->site);
  return TRUE;
}

static void
stage (Fixture *f, const char *name, const char *state)
{
  g_autoptr (JsonObject) m = control_msg_new ("event");

  json_object_set_string_member (m, "event", "stage");
  json_object_set_string_member (m, "site", f->site);
  json_object_set_string_member (m, "stage", name);
  json_object_set_string_member (m, "state", state);
  json_object_set_int_member (m, "elapsed_ms", 1234);
  daemon_control_send (f->attached, m);
}

static void
on_credentials (GHashTable *values, const GError *error, gpointer user)
{
  Fixture *f = user;

  if (error)
    f->cred_error = TRUE;
  else
    {
      f->username = g_strdup (g_hash_table_lookup (values, "username"));
      f->password = g_strdup (g_hash_table_lookup (values, "password"));
      stage (f, "xauth", "up");
      stage (f, "phase2", "up");
      if (f->banner != NULL)
        {
          g_autoptr (JsonObject) m = control_msg_new ("event");

          json_object_set_string_member (m, "event", "banner");
          json_object_set_string_member (m, "site", f->site);
          json_object_set_string_member (m, "text", f->banner);
          daemon_control_send (f->attached, m);
        }
    }
  if (f->end_on_answer && f->attached)
    {
      g_autoptr (JsonObject) m = control_msg_new ("event");

      json_object_set_string_member (m, "event", "detached");
      json_object_set_string_member (m, "site", f->site);
      json_object_set_string_member (m, "code", f->end_code);
      json_object_set_string_member (m, "message", "the ISAKMP SA was deleted");
      daemon_control_send (f->attached, m);
    }
}

static gboolean
fake_connect (gpointer user, ControlClient *c, const char *site, GError **error)
{
  Fixture *f = user;
  static const DaemonCredentialField fields[] = {
    { "username", "User name", FALSE }, { "password", "Password", TRUE },
  };

  f->attached = c;
  stage (f, "phase1", "up");
  g_assert_cmpuint (daemon_control_request_credentials (c, site, "Enter your VPN credentials", fields, 2,
                                                        on_credentials, f), >, 0);
  return TRUE;
}

static gboolean
fake_disconnect (gpointer user, const char *site, GError **error)
{
  return TRUE;
}

static JsonObject *
fake_status (gpointer user)
{
  return daemon_status_json ("IKE gw ESTABLISHED i=0123456789abcdef r=fedcba9876543210 aes128-sha256-modp2048 main "
                             "initiator life=28800s\n  ESP gw in=c1a2b3c4 out=c4b3a2c1 aes128-sha256 tunnel "
                             "pfs=modp2048 life=3600s packets=1/2 bytes=100/200 drops=0\n");
}

static JsonObject *
fake_statistics (gpointer user)
{
  return json_object_new ();
}

static void
fake_gone (gpointer user, ControlClient *c)
{
  Fixture *f = user;

  if (c == f->attached)
    f->attached = NULL;
  f->gone++;
}

static const DaemonControlOps fake_ops = {
  fake_upload, fake_connect, fake_disconnect, fake_status, fake_statistics, fake_gone,
};

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("modike-control-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "sub", "ctl.sock", NULL);
  f->ctl = daemon_control_new (f->path, getegid (), &fake_ops, f, &error);
  g_assert_no_error (error);
  f->loop = g_main_loop_new (NULL, FALSE);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autofree char *sub = g_path_get_dirname (f->path);

  daemon_control_free (f->ctl);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));   /* removed on free */
  g_rmdir (sub);
  g_rmdir (f->dir);
  g_main_loop_unref (f->loop);
  g_free (f->dir);
  g_free (f->path);
  g_free (f->site);
  g_free (f->username);
  g_free (f->password);
}

static void
on_client_exit (GObject *src, GAsyncResult *res, gpointer data)
{
  Fixture *f = data;

  g_assert_true (g_subprocess_wait_finish (G_SUBPROCESS (src), res, NULL));
  g_main_loop_quit (f->loop);
}

/* Runs the modike client; returns its exit status, stdout in *out. */
static int
run_client (Fixture *f, const char *const *env, char **out, char **err, const char *const *args)
{
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) p = NULL;
  g_autoptr (GError) error = NULL;
  const char *client = g_getenv ("MODIKE_CLIENT");

  g_assert_nonnull (client);
  g_ptr_array_add (argv, (gpointer) client);
  g_ptr_array_add (argv, (gpointer) "--socket");
  g_ptr_array_add (argv, f->path);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  g_subprocess_launcher_unsetenv (l, "MODIKE_USERNAME");
  g_subprocess_launcher_unsetenv (l, "MODIKE_PASSWORD");
  for (guint i = 0; env && env[i]; i += 2)
    g_subprocess_launcher_setenv (l, env[i], env[i + 1], TRUE);
  if (f->child_setup)
    g_subprocess_launcher_set_child_setup (l, f->child_setup, f->child_data, NULL);
  p = g_subprocess_launcher_spawnv (l, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_wait_async (p, NULL, on_client_exit, f);
  g_main_loop_run (f->loop);
  {
    g_autoptr (GInputStream) so = g_object_ref (g_subprocess_get_stdout_pipe (p));
    g_autoptr (GInputStream) se = g_object_ref (g_subprocess_get_stderr_pipe (p));
    char buf[8192];
    gsize n = 0;

    g_assert_true (g_input_stream_read_all (so, buf, sizeof buf - 1, &n, NULL, NULL));
    buf[n] = '\0';
    *out = g_strdup (buf);
    g_assert_true (g_input_stream_read_all (se, buf, sizeof buf - 1, &n, NULL, NULL));
    buf[n] = '\0';
    *err = g_strdup (buf);
  }
  return g_subprocess_get_if_exited (p) ? g_subprocess_get_exit_status (p) : -1;
}

static char *
write_site (Fixture *f, const char *text)
{
  char *file = g_build_filename (f->dir, "site.xml", NULL);

  g_assert_true (g_file_set_contents (file, text, -1, NULL));
  return file;
}

static void
test_client_credentials_env (Fixture *f, gconstpointer data)
{
  g_autofree char *site = write_site (f, "<modike><peer name=\"gw\"/></modike>");
  const char *env[] = { "MODIKE_USERNAME", "alice", "MODIKE_PASSWORD", "s3cret pass", NULL };
  const char *args[] = { "connect", site, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int rc;

  f->end_on_answer = TRUE;
  f->end_code = "closed";
  rc = run_client (f, env, &out, &err, args);
  g_assert_cmpint (rc, ==, 7);   /* the connection ended */
  g_assert_cmpstr (f->username, ==, "alice");
  g_assert_cmpstr (f->password, ==, "s3cret pass");
  g_assert_nonnull (strstr (out, "connecting to gw"));
  g_assert_true (g_regex_match_simple ("phase1 +up +1\\.234 s", out, 0, 0));
  g_assert_true (g_regex_match_simple ("xauth +up", out, 0, 0));
  g_assert_true (g_regex_match_simple ("phase2 +up", out, 0, 0));
  g_assert_nonnull (strstr (out, "detached: the ISAKMP SA was deleted"));
  /* The client closed: the server told the owner. */
  for (int i = 0; i < 100 && f->gone == 0; i++)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (f->gone, ==, 1);
}

static void
test_client_credentials_file (Fixture *f, gconstpointer data)
{
  g_autofree char *site = write_site (f, "<modike><peer name=\"gw\"/></modike>");
  g_autofree char *creds = g_build_filename (f->dir, "creds", NULL);
  const char *env[] = { "MODIKE_PASSWORD", "from-env", NULL };
  const char *args[] = { "connect", site, "--credentials", creds, NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_assert_true (g_file_set_contents (creds, "username=bob\npassword=from=file\n", -1, NULL));
  f->end_on_answer = TRUE;
  f->end_code = "auth";
  g_assert_cmpint (run_client (f, env, &out, &err, args), ==, 4);   /* authentication failed */
  g_assert_cmpstr (f->username, ==, "bob");
  g_assert_cmpstr (f->password, ==, "from=file");   /* the file wins over the environment */
  g_unlink (creds);
  g_unlink (site);
}

static void
lose_tty (gpointer data)
{
  setsid ();
}

/* The banner is the gateway's text: control characters (a terminal's
 * escape sequences) are shown escaped, lines stay lines. */
static void
test_client_banner_escaped (Fixture *f, gconstpointer data)
{
  g_autofree char *site = write_site (f, "<modike><peer name=\"gw\"/></modike>");
  const char *env[] = { "MODIKE_USERNAME", "alice", "MODIKE_PASSWORD", "pw", NULL };
  const char *args[] = { "connect", site, NULL };
  g_autofree char *out = NULL, *err = NULL;

  f->end_on_answer = TRUE;
  f->end_code = "closed";
  f->banner = "Welcome\n\x1b]0;owned\x07line two\r\x1b[2J\tend \xc3\xa9";
  g_assert_cmpint (run_client (f, env, &out, &err, args), ==, 7);
  g_assert_null (strchr (out, '\x1b'));
  g_assert_null (strchr (out, '\x07'));
  g_assert_null (strchr (out, '\r'));
  g_assert_nonnull (strstr (out, "Welcome\n\\x1b]0;owned\\x07line two\\x0d\\x1b[2J\tend \xc3\xa9\n"));
  g_unlink (site);
}

/* No credentials anywhere and no terminal: the client cancels, and the
 * requester hears it (the fake then ends the connection). */
static void
test_client_credentials_missing (Fixture *f, gconstpointer data)
{
  g_autofree char *site = write_site (f, "<modike><peer name=\"gw\"/></modike>");
  const char *args[] = { "connect", site, NULL };
  g_autofree char *out = NULL, *err = NULL;

  f->end_on_answer = TRUE;
  f->end_code = "auth";
  f->child_setup = lose_tty;
  g_assert_cmpint (run_client (f, NULL, &out, &err, args), ==, 4);
  g_assert_true (f->cred_error);
  g_assert_null (f->password);
  g_assert_nonnull (strstr (err, "MODIKE_USERNAME"));
  g_unlink (site);
}

/* The child gets the pty as its controlling terminal. */
static void
pty_child_setup (gpointer data)
{
  int fd;

  setsid ();
  fd = open (data, O_RDWR);
  if (fd >= 0)
    ioctl (fd, TIOCSCTTY, 0);
}

/* Types the answers when the prompts appear, as a user would. */
static gboolean
on_pty (gint fd, GIOCondition cond, gpointer data)
{
  Fixture *f = data;
  char buf[512];
  ssize_t n = read (fd, buf, sizeof buf);

  if (n <= 0)
    {
      f->pty_watch = 0;       /* EIO: the client closed the terminal */
      return G_SOURCE_REMOVE;
    }
  g_string_append_len (f->pty_out, buf, n);
  if (f->pty_answered == 0 && strstr (f->pty_out->str, "User name: "))
    {
      g_assert_cmpint (write (fd, "carol\n", 6), ==, 6);
      f->pty_answered++;
    }
  if (f->pty_answered == 1 && strstr (f->pty_out->str, "Password: "))
    {
      g_assert_cmpint (write (fd, "hunter2\n", 8), ==, 8);
      f->pty_answered++;
    }
  return G_SOURCE_CONTINUE;
}

/* No file, no environment: the client prompts on its terminal, the
 * password without echo. */
static void
test_client_credentials_tty (Fixture *f, gconstpointer data)
{
  g_autofree char *site = write_site (f, "<modike><peer name=\"gw\"/></modike>");
  const char *args[] = { "connect", site, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int master = posix_openpt (O_RDWR | O_NOCTTY);

  g_assert_cmpint (master, >=, 0);
  g_assert_cmpint (grantpt (master), ==, 0);
  g_assert_cmpint (unlockpt (master), ==, 0);
  f->pty_out = g_string_new (NULL);
  f->child_setup = pty_child_setup;
  f->child_data = ptsname (master);
  f->end_on_answer = TRUE;
  f->end_code = "closed";
  f->pty_watch = g_unix_fd_add (master, G_IO_IN, on_pty, f);
  g_assert_cmpint (run_client (f, NULL, &out, &err, args), ==, 7);
  /* Whatever the terminal still holds. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  if (f->pty_watch)
    g_source_remove (f->pty_watch);
  close (master);
  g_assert_cmpstr (f->username, ==, "carol");
  g_assert_cmpstr (f->password, ==, "hunter2");
  g_assert_nonnull (strstr (f->pty_out->str, "User name: carol"));   /* echoed */
  g_assert_nonnull (strstr (f->pty_out->str, "Password: "));
  g_assert_null (strstr (f->pty_out->str, "hunter2"));                /* not echoed */
  g_string_free (f->pty_out, TRUE);
  g_unlink (site);
}

static void
test_client_status_and_errors (Fixture *f, gconstpointer data)
{
  g_autofree char *bad = write_site (f, "<modike/>");
  const char *status[] = { "status", NULL };
  const char *connect[] = { "connect", bad, NULL };
  const char *none[] = { "frobnicate", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_assert_cmpint (run_client (f, NULL, &out, &err, status), ==, 0);
  g_assert_true (g_regex_match_simple ("^PEER +SA +STATE/SPIS +ALGORITHMS +LIFETIME +BYTES IN/OUT\n", out, 0, 0));
  g_assert_true (g_regex_match_simple ("\ngw +IKE +ESTABLISHED +aes128-sha256-modp2048 +28800s +-\n", out, 0, 0));
  g_assert_true (g_regex_match_simple ("\ngw +ESP +c1a2b3c4/c4b3a2c1 +aes128-sha256 +3600s +100/200\n", out, 0, 0));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, NULL, &out, &err, connect), ==, 3);   /* config refused */
  g_assert_nonnull (strstr (err, "site.xml:1: no <peer>"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, NULL, &out, &err, none), ==, 2);
  g_unlink (bad);
}

static void
test_client_no_daemon (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *status[] = { "status", NULL };
  g_autofree char *saved = f->path;

  f->path = g_build_filename (f->dir, "nothing.sock", NULL);
  g_assert_cmpint (run_client (f, NULL, &out, &err, status), ==, 6);
  g_assert_nonnull (strstr (err, "not running"));
  g_free (f->path);
  f->path = g_steal_pointer (&saved);
}

/* A request whose client goes away fails at once; a cancelled one too. */
static void
test_request_client_gone (Fixture *f, gconstpointer data)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  const char *hello = "{\"v\":1,\"type\":\"upload\",\"id\":1,\"site\":\"<peer\"}\n"
                      "{\"v\":1,\"type\":\"connect\",\"id\":2,\"site\":\"gw\"}\n";
  char buf[4096];

  strcpy (sun.sun_path, f->path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &sun, sizeof sun), ==, 0);
  g_assert_cmpint (write (fd, hello, strlen (hello)), ==, (gssize) strlen (hello));
  while (f->attached == NULL)
    g_main_context_iteration (NULL, TRUE);
  /* The request went out on the wire. */
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpint (read (fd, buf, sizeof buf), >, 0);
  close (fd);
  while (f->gone == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (f->cred_error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/control/codec/roundtrip", test_codec_roundtrip);
  g_test_add_func ("/control/codec/malformed", test_codec_malformed);
  g_test_add_func ("/control/codec/reader", test_codec_reader);
  g_test_add_func ("/control/status-json", test_status_json);
#define ADD(name, fn) g_test_add ("/control/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("client/credentials-env", test_client_credentials_env);
  ADD ("client/credentials-file", test_client_credentials_file);
  ADD ("client/status-and-errors", test_client_status_and_errors);
  ADD ("client/no-daemon", test_client_no_daemon);
  ADD ("server/request-client-gone", test_request_client_gone);
  ADD ("client/credentials-missing", test_client_credentials_missing);
  ADD ("client/credentials-tty", test_client_credentials_tty);
  ADD ("client/banner-escaped", test_client_banner_escaped);
  return g_test_run ();
}

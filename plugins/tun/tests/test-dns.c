/* tun DNS: the resolv.conf back end against files in a temporary
 * directory (restore byte for byte, two adapters cleared in both orders,
 * symlinks, bind mounts, crash restore, a live owner, foreign rewrites,
 * failures that leave the file alone); the systemd-resolved back end
 * against a fake org.freedesktop.resolve1 on a private bus (GTestDBus);
 * the choice between them; the plugin's ops and <tun> section. Bind and
 * read-only mounts need root (a mount namespace of the test's own) and
 * the plugin's adapters a network namespace: without them those tests
 * fail, saying why. */
#include "dns.h"
#include "tun.h"
#include "loader.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *ns_error;   /* why the namespaces could not be set up */

/* The plugin's log lines ("LEVEL: text\n"), for tests to check what it
 * says; warnings stay fatal unless a test expects them. */
static GString *logged;
static gboolean warnings_expected;

static GLogWriterOutput
writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user)
{
  const char *domain = NULL, *text = NULL;

  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
      domain = fields[i].value;
    else if (strcmp (fields[i].key, "MESSAGE") == 0)
      text = fields[i].value;
  if (g_strcmp0 (domain, "modike-tun") == 0 && text != NULL)
    {
      g_string_append_printf (logged, "%s: %s\n",
                              (level & G_LOG_LEVEL_WARNING) ? "WARNING"
                              : (level & G_LOG_LEVEL_MESSAGE) ? "MESSAGE"
                                                               : "OTHER",
                              text);
      if ((level & G_LOG_LEVEL_WARNING) && warnings_expected)
        return G_LOG_WRITER_HANDLED;
    }
  return g_log_writer_default (level, fields, n_fields, user);
}

/* A line of the log so far matches pattern; the log starts over. */
static void
assert_logged (const char *pattern)
{
  g_auto (GStrv) lines = g_strsplit (logged->str, "\n", -1);
  gboolean found = FALSE;

  for (guint i = 0; lines[i] != NULL && !found; i++)
    found = g_pattern_match_simple (pattern, lines[i]);
  if (!found)
    g_error ("no log line matches \"%s\"; the log:\n%s", pattern, logged->str);
  g_string_truncate (logged, 0);
}

static const char original_text[] = "# from the test\n"
                                    "nameserver 192.0.2.1\n"
                                    "nameserver 192.0.2.2\n"
                                    "search example.org lab.example\n"
                                    "options edns0\n"
                                    "nameserver 192.0.2.3";  /* no final newline */

static void
setup_namespaces (void)
{
  if (geteuid () != 0)
    {
      ns_error = g_strdup ("these tests need root (mount and network namespaces)");
      return;
    }
  if (unshare (CLONE_NEWNS | CLONE_NEWNET) != 0)
    {
      ns_error = g_strdup_printf ("cannot enter new mount and network namespaces: %s", g_strerror (errno));
      return;
    }
  /* Our mounts stay ours. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    ns_error = g_strdup_printf ("cannot make the mounts private: %s", g_strerror (errno));
}

static gboolean
need_namespaces (void)
{
  if (ns_error != NULL)
    {
      g_test_fail_printf ("%s", ns_error);
      return FALSE;
    }
  return TRUE;
}

/* ---- a temporary tree: DIR/etc/resolv.conf, DIR/run (state) ---- */

typedef struct {
  char *dir;
  char *etc;
  char *resolv;
  char *run;
  char *state;
} Tree;

static void
write_text (const char *path, const char *text)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (g_file_set_contents (path, text, -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (chmod (path, 0644), ==, 0);
}

static char *
read_text (const char *path)
{
  g_autoptr (GError) error = NULL;
  char *text = NULL;

  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_no_error (error);
  return text;
}

static void
tree_init (Tree *t, const char *original)
{
  g_autoptr (GError) error = NULL;

  t->dir = g_dir_make_tmp ("modike-dns-XXXXXX", &error);
  g_assert_no_error (error);
  t->etc = g_build_filename (t->dir, "etc", NULL);
  t->resolv = g_build_filename (t->etc, "resolv.conf", NULL);
  t->run = g_build_filename (t->dir, "run", NULL);
  t->state = g_build_filename (t->run, TUN_DNS_STATE_FILE, NULL);
  g_assert_cmpint (mkdir (t->etc, 0755), ==, 0);
  if (original != NULL)
    write_text (t->resolv, original);
}

static void
remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *sub = g_build_filename (path, name, NULL);

      if (g_file_test (sub, G_FILE_TEST_IS_DIR) && !g_file_test (sub, G_FILE_TEST_IS_SYMLINK))
        remove_tree (sub);
      else
        unlink (sub);
    }
  if (d != NULL)
    g_dir_close (d);
  rmdir (path);
}

static void
tree_clear (Tree *t)
{
  remove_tree (t->dir);
  g_free (t->dir);
  g_free (t->etc);
  g_free (t->resolv);
  g_free (t->run);
  g_free (t->state);
}

static void
assert_original (const char *path)
{
  g_autofree char *now = read_text (path);

  g_assert_cmpstr (now, ==, original_text);
}

static const char *const no_strv[] = { NULL };
static const char *const servers_a[] = { "10.1.0.53", "10.1.0.54", NULL };
static const char *const domains_a[] = { "corp.example", NULL };
static const char *const servers_b[] = { "10.2.0.53", "fd00::53", NULL };
static const char *const domains_b[] = { "lab.example", "other.example", NULL };

static void
set_ok (TunResolvConf *rc, const char *ifname, const char *const *servers, const char *const *domains)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (tun_resolvconf_set (rc, ifname, servers, domains, &error));
  g_assert_no_error (error);
}

/* ---- resolv.conf ---- */

/* Ours first, the original's up to three nameservers, one search line,
 * the rest as it was; the state file (0600) before; back byte for byte. */
static void
test_rc_set_clear (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autofree char *now = NULL;
  g_autofree char *expect = NULL;
  struct stat st;

  tree_init (&t, original_text);
  rc = tun_resolvconf_new (t.resolv, t.run);
  g_assert_false (tun_resolvconf_active (rc));
  set_ok (rc, "modike0", servers_a, domains_a);
  g_assert_true (tun_resolvconf_active (rc));
  now = read_text (t.resolv);
  expect = g_strdup_printf ("# Generated by modike for modike0; the original comes back when they go (kept in %s)\n"
                            "nameserver 10.1.0.53\n"
                            "nameserver 10.1.0.54\n"
                            "nameserver 192.0.2.1\n"
                            "search corp.example example.org lab.example\n"
                            "# from the test\n"
                            "options edns0\n",
                            t.state);
  g_assert_cmpstr (now, ==, expect);
  g_assert_cmpint (stat (t.resolv, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 07777, ==, 0644);
  g_assert_cmpint (stat (t.state, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 07777, ==, 0600);
  {
    g_autofree char *state = read_text (t.state);
    g_autofree char *b64 = g_base64_encode ((const guchar *) original_text, strlen (original_text));

    g_assert_nonnull (strstr (state, b64));
    g_assert_nonnull (strstr (state, "[adapter modike0]"));
  }

  /* Set again replaces. */
  set_ok (rc, "modike0", servers_b, no_strv);
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_null (strstr (now, "10.1.0.53"));
  g_assert_nonnull (strstr (now, "nameserver 10.2.0.53\nnameserver fd00::53\nnameserver 192.0.2.1\n"
                                 "search example.org lab.example\n"));

  tun_resolvconf_clear (rc, "modike0");
  g_assert_false (tun_resolvconf_active (rc));
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  g_assert_cmpint (stat (t.resolv, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 07777, ==, 0644);
  /* A clear for an adapter that set nothing changes nothing. */
  tun_resolvconf_clear (rc, "modike9");
  assert_original (t.resolv);
  tree_clear (&t);
}

/* Two adapters, cleared in the order given (data: TRUE = the first one
 * set is cleared first). */
static void
test_rc_two (gconstpointer data)
{
  gboolean first_first = GPOINTER_TO_INT (data);
  const char *gone = first_first ? "modike0" : "modike1";
  const char *stays = first_first ? "modike1" : "modike0";
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autofree char *now = NULL;
  g_autofree char *marker = NULL;

  tree_init (&t, original_text);
  rc = tun_resolvconf_new (t.resolv, t.run);
  set_ok (rc, "modike0", servers_a, domains_a);
  set_ok (rc, "modike1", servers_b, domains_b);
  now = read_text (t.resolv);
  /* Ours fill libc's three: the original's nameservers are out. */
  g_assert_nonnull (strstr (now, " for modike0 modike1;"));
  g_assert_nonnull (strstr (now, "\nnameserver 10.1.0.53\nnameserver 10.1.0.54\nnameserver 10.2.0.53\n"
                                 "nameserver fd00::53\nsearch corp.example lab.example other.example example.org\n"
                                 "# from the test\noptions edns0\n"));
  g_assert_null (strstr (now, "192.0.2."));

  tun_resolvconf_clear (rc, gone);
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  marker = g_strdup_printf (" for %s;", stays);
  g_assert_nonnull (strstr (now, marker));
  if (first_first)
    {
      g_assert_null (strstr (now, "10.1.0.53"));
      g_assert_nonnull (strstr (now, "nameserver 10.2.0.53\nnameserver fd00::53\nnameserver 192.0.2.1\n"
                                     "search lab.example other.example example.org\n"));
    }
  else
    {
      g_assert_null (strstr (now, "10.2.0.53"));
      g_assert_nonnull (strstr (now, "nameserver 10.1.0.53\nnameserver 10.1.0.54\nnameserver 192.0.2.1\n"
                                     "search corp.example example.org lab.example\n"));
    }
  g_assert_true (g_file_test (t.state, G_FILE_TEST_EXISTS));
  tun_resolvconf_clear (rc, stays);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  tree_clear (&t);
}

/* resolv.conf a symlink (to a live file, and dangling as to a resolved
 * stub that does not run): written through, the link stays. */
static void
test_rc_symlink (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autofree char *target = NULL;
  g_autofree char *now = NULL;
  g_autofree char *link = NULL;

  tree_init (&t, NULL);
  target = g_build_filename (t.dir, "stub-resolv.conf", NULL);
  write_text (target, original_text);
  g_assert_cmpint (symlink ("../stub-resolv.conf", t.resolv), ==, 0);
  rc = tun_resolvconf_new (t.resolv, t.run);
  set_ok (rc, "modike0", servers_a, domains_a);
  g_assert_true (g_file_test (t.resolv, G_FILE_TEST_IS_SYMLINK));
  now = read_text (target);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for modike0;"));
  tun_resolvconf_clear (rc, "modike0");
  g_assert_true (g_file_test (t.resolv, G_FILE_TEST_IS_SYMLINK));
  assert_original (target);

  /* Dangling: the target appears while we are up and goes after. */
  g_assert_cmpint (unlink (target), ==, 0);
  set_ok (rc, "modike0", servers_a, domains_a);
  g_clear_pointer (&now, g_free);
  now = read_text (target);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER));
  g_assert_nonnull (strstr (now, "nameserver 10.1.0.53\nnameserver 10.1.0.54\nsearch corp.example\n"));
  tun_resolvconf_clear (rc, "modike0");
  g_assert_false (g_file_test (target, G_FILE_TEST_EXISTS));
  link = g_file_read_link (t.resolv, NULL);
  g_assert_cmpstr (link, ==, "../stub-resolv.conf");
  tree_clear (&t);
}

/* No resolv.conf at all: ours while up, none after. */
static void
test_rc_absent (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;

  tree_init (&t, NULL);
  rc = tun_resolvconf_new (t.resolv, t.run);
  set_ok (rc, "modike0", servers_a, no_strv);
  g_assert_true (g_file_test (t.resolv, G_FILE_TEST_IS_REGULAR));
  tun_resolvconf_clear (rc, "modike0");
  g_assert_false (g_file_test (t.resolv, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  tree_clear (&t);
}

/* resolv.conf a bind mount (as `ip netns exec` makes it): rename says
 * EBUSY, so it is rewritten in place and the mount stays. */
static void
test_rc_bind_mount (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autofree char *source = NULL;
  g_autofree char *now = NULL;
  struct stat before, after;

  if (!need_namespaces ())
    return;
  tree_init (&t, "placeholder\n");
  source = g_build_filename (t.dir, "netns-resolv.conf", NULL);
  write_text (source, original_text);
  g_assert_cmpint (mount (source, t.resolv, NULL, MS_BIND, NULL), ==, 0);
  g_assert_cmpint (stat (t.resolv, &before), ==, 0);
  rc = tun_resolvconf_new (t.resolv, t.run);
  set_ok (rc, "modike0", servers_a, domains_a);
  now = read_text (source);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for modike0;"));
  g_assert_nonnull (strstr (now, "nameserver 10.1.0.53\n"));
  g_assert_cmpint (stat (t.resolv, &after), ==, 0);
  g_assert_cmpuint (before.st_ino, ==, after.st_ino);
  tun_resolvconf_clear (rc, "modike0");
  assert_original (source);
  assert_original (t.resolv);
  g_assert_cmpint (umount (t.resolv), ==, 0);
  tree_clear (&t);
}

/* A directory we may not write: root writes anyway, so a read-only bind
 * mount of it. */
static void
make_read_only (const char *dir)
{
  g_assert_cmpint (mount (dir, dir, NULL, MS_BIND, NULL), ==, 0);
  g_assert_cmpint (mount (NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), ==, 0);
}

/* A failed set names the file and leaves resolv.conf and the state as
 * they were: resolv.conf's directory read-only, then the state's. */
static void
test_rc_unwritable (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *now = NULL;

  if (!need_namespaces ())
    return;
  tree_init (&t, original_text);
  rc = tun_resolvconf_new (t.resolv, t.run);
  make_read_only (t.etc);
  g_assert_false (tun_resolvconf_set (rc, "modike0", servers_a, domains_a, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, t.resolv));
  g_clear_error (&error);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  g_assert_false (tun_resolvconf_active (rc));
  g_assert_cmpint (umount (t.etc), ==, 0);

  /* With one adapter up, a second fails on the state: the first's file
   * stays as it is. */
  set_ok (rc, "modike0", servers_a, domains_a);
  before = read_text (t.resolv);
  make_read_only (t.run);
  g_assert_false (tun_resolvconf_set (rc, "modike1", servers_b, domains_b, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, t.state));
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, before);
  g_assert_cmpint (umount (t.run), ==, 0);
  /* modike1 never made it in: clearing modike0 restores. */
  tun_resolvconf_clear (rc, "modike1");
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, before);
  tun_resolvconf_clear (rc, "modike0");
  assert_original (t.resolv);
  tree_clear (&t);
}

/* The disk fills half way through an in-place write (resolv.conf a
 * symlink into a full tmpfs): the old content goes back. */
static void
test_rc_disk_full (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) big = g_string_new (original_text);
  g_autofree char *small = NULL;
  g_autofree char *target = NULL;
  g_autofree char *filler = NULL;
  g_autofree char *now = NULL;

  if (!need_namespaces ())
    return;
  tree_init (&t, NULL);
  small = g_build_filename (t.dir, "small", NULL);
  target = g_build_filename (small, "resolv.conf", NULL);
  filler = g_build_filename (small, "filler", NULL);
  g_assert_cmpint (mkdir (small, 0755), ==, 0);
  /* Two pages: the file's and the filler's. */
  g_assert_cmpint (mount ("tmpfs", small, "tmpfs", 0, "size=8k"), ==, 0);
  g_string_append_c (big, '\n');
  while (big->len < 4000)
    g_string_append (big, "# padding to fill a page\n");
  write_text (target, big->str);
  write_text (filler, "x");
  g_assert_cmpint (symlink (target, t.resolv), ==, 0);
  rc = tun_resolvconf_new (t.resolv, t.run);
  g_assert_false (tun_resolvconf_set (rc, "modike0", servers_a, domains_a, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, t.resolv));
  now = read_text (target);
  g_assert_cmpstr (now, ==, big->str);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  g_assert_false (tun_resolvconf_active (rc));
  g_assert_cmpint (umount (small), ==, 0);
  tree_clear (&t);
}

/* New paths while an adapter's DNS is in the old file: they apply once
 * it is out. */
static void
test_rc_reconfigure (void)
{
  Tree t, u;
  g_autoptr (TunDns) dns = tun_dns_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *nobus = NULL;
  g_autofree char *now = NULL;
  ModikeAddr server;
  TunDnsBackend backend = TUN_DNS_NONE;

  g_assert_true (modike_addr_parse ("192.0.2.53", 0, &server, &error));
  tree_init (&t, original_text);
  tree_init (&u, original_text);
  nobus = g_strdup_printf ("unix:path=%s/no-bus", t.dir);
  tun_dns_set_bus_address (dns, nobus);
  tun_dns_configure (dns, t.resolv, t.run);
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, &server, 1, no_strv, &error));
  g_assert_no_error (error);
  g_string_truncate (logged, 0);
  tun_dns_configure (dns, u.resolv, u.run);
  assert_logged ("MESSAGE: the new resolv-conf and state-dir apply once no adapter's DNS is in *");
  /* Set again still goes to the file it is in. */
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, &server, 1, no_strv, &error));
  assert_original (u.resolv);
  tun_dns_clear (dns, &backend, "modike0", 3);
  assert_original (t.resolv);
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, &server, 1, no_strv, &error));
  g_assert_no_error (error);
  assert_original (t.resolv);
  now = read_text (u.resolv);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for modike0;"));
  tun_dns_clear (dns, &backend, "modike0", 3);
  assert_original (u.resolv);
  tree_clear (&t);
  tree_clear (&u);
}

/* Someone else rewrites resolv.conf while we are up: theirs stays. */
static void
test_rc_foreign (void)
{
  static const char theirs[] = "# NetworkManager\nnameserver 198.51.100.1\n";
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autofree char *now = NULL;

  tree_init (&t, original_text);
  rc = tun_resolvconf_new (t.resolv, t.run);
  set_ok (rc, "modike0", servers_a, domains_a);
  write_text (t.resolv, theirs);
  tun_resolvconf_clear (rc, "modike0");
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, theirs);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  /* Two up; theirs comes between: clears leave it; a set after it
   * builds on theirs, and the last clear gives theirs back. */
  write_text (t.resolv, original_text);
  set_ok (rc, "modike0", servers_a, domains_a);
  set_ok (rc, "modike1", servers_b, domains_b);
  write_text (t.resolv, theirs);
  tun_resolvconf_clear (rc, "modike0");
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, theirs);
  set_ok (rc, "modike2", servers_a, no_strv);
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_nonnull (strstr (now, " for modike1 modike2;"));
  g_assert_nonnull (strstr (now, "\nnameserver 10.2.0.53\nnameserver fd00::53\nnameserver 10.1.0.53\n"
                                 "nameserver 10.1.0.54\nsearch lab.example other.example\n# NetworkManager\n"));
  tun_resolvconf_clear (rc, "modike1");
  tun_resolvconf_clear (rc, "modike2");
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, theirs);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  tree_clear (&t);
}

/* A child sets DNS for two adapters and dies without clearing (wait: it
 * blocks until killed instead). */
static pid_t
child_sets (Tree *t, gboolean wait, int *ready_fd)
{
  int ready[2];
  pid_t pid;

  g_assert_cmpint (pipe (ready), ==, 0);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      TunResolvConf *rc = tun_resolvconf_new (t->resolv, t->run);
      gboolean ok = tun_resolvconf_set (rc, "modike0", servers_a, domains_a, NULL)
                    && tun_resolvconf_set (rc, "modike1", servers_b, domains_b, NULL);

      close (ready[0]);
      if (write (ready[1], ok ? "y" : "n", 1) != 1 || !ok)
        _exit (1);
      if (wait)
        pause ();
      _exit (0);
    }
  close (ready[1]);
  {
    char c = 0;

    g_assert_cmpint (read (ready[0], &c, 1), ==, 1);
    g_assert_cmpint (c, ==, 'y');
  }
  if (ready_fd != NULL)
    *ready_fd = ready[0];
  else
    close (ready[0]);
  return pid;
}

static void
reap (pid_t pid)
{
  int status;

  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
}

/* A modiked killed with DNS set: its state file is left, and the next
 * one puts the original back when it reads its config. */
static void
test_rc_crash (void)
{
  Tree t;
  g_autoptr (TunDns) dns = tun_dns_new ();
  g_autofree char *now = NULL;

  tree_init (&t, original_text);
  reap (child_sets (&t, FALSE, NULL));
  g_assert_true (g_file_test (t.state, G_FILE_TEST_EXISTS));
  now = read_text (t.resolv);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for modike0 modike1;"));
  g_string_truncate (logged, 0);
  tun_dns_configure (dns, t.resolv, t.run);
  assert_logged ("MESSAGE: *the original is back from*adapters: modike0 modike1)");
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  /* Left behind, then rewritten by someone else: theirs stays, the state
   * goes. */
  reap (child_sets (&t, FALSE, NULL));
  write_text (t.resolv, "nameserver 198.51.100.1\n");
  {
    g_autoptr (TunResolvConf) rc = tun_resolvconf_new (t.resolv, t.run);

    tun_resolvconf_recover (rc);
  }
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, "nameserver 198.51.100.1\n");
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  /* Left behind and not recovered at start: the first set restores first,
   * so the original (not the dead one's file) is what comes back. */
  write_text (t.resolv, original_text);
  reap (child_sets (&t, FALSE, NULL));
  {
    g_autoptr (TunResolvConf) rc = tun_resolvconf_new (t.resolv, t.run);

    set_ok (rc, "modike5", servers_b, no_strv);
    g_clear_pointer (&now, g_free);
    now = read_text (t.resolv);
    g_assert_nonnull (strstr (now, " for modike5;"));
    g_assert_null (strstr (now, "10.1.0.53"));
    tun_resolvconf_clear (rc, "modike5");
  }
  assert_original (t.resolv);
  tree_clear (&t);
}

/* The state of a modiked that runs is not a leftover: left alone (and a
 * second one cannot set), until it dies. */
static void
test_rc_live_owner (void)
{
  Tree t;
  g_autoptr (TunResolvConf) rc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *live = NULL;
  g_autofree char *now = NULL;
  int ready_fd = -1;
  pid_t pid;

  tree_init (&t, original_text);
  pid = child_sets (&t, TRUE, &ready_fd);
  live = read_text (t.resolv);
  rc = tun_resolvconf_new (t.resolv, t.run);
  tun_resolvconf_recover (rc);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, live);
  g_assert_true (g_file_test (t.state, G_FILE_TEST_EXISTS));
  g_assert_false (tun_resolvconf_set (rc, "modike7", servers_a, no_strv, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_cmpstr (now, ==, live);

  g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
  reap (pid);
  close (ready_fd);
  tun_resolvconf_recover (rc);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  tree_clear (&t);
}

/* ---- systemd-resolved: a fake one on a private bus ---- */

static GTestDBus *test_bus;

static const char *
bus_address (void)
{
  if (test_bus == NULL)
    {
      test_bus = g_test_dbus_new (G_TEST_DBUS_NONE);
      g_test_dbus_up (test_bus);
    }
  return g_test_dbus_get_bus_address (test_bus);
}

typedef struct {
  char *method;
  GVariant *params;
} FakeCall;

typedef struct {
  gboolean own_name;        /* FALSE: the object is there, the name is not */
  const char *fail;         /* a method answered with an error */
  GThread *thread;
  GMainContext *ctx;
  GMainLoop *loop;
  GMutex lock;
  GCond cond;
  gboolean ready;
  GPtrArray *calls;         /* FakeCall */
} Fake;

static const char fake_xml[] =
  "<node><interface name='org.freedesktop.resolve1.Manager'>"
  "<method name='SetLinkDNS'><arg type='i' direction='in'/><arg type='a(iay)' direction='in'/></method>"
  "<method name='SetLinkDomains'><arg type='i' direction='in'/><arg type='a(sb)' direction='in'/></method>"
  "<method name='SetLinkDefaultRoute'><arg type='i' direction='in'/><arg type='b' direction='in'/></method>"
  "<method name='RevertLink'><arg type='i' direction='in'/></method>"
  "</interface></node>";

static void
fake_call_free (gpointer p)
{
  FakeCall *c = p;

  g_free (c->method);
  g_variant_unref (c->params);
  g_free (c);
}

static void
fake_method (GDBusConnection *conn, const char *sender, const char *path, const char *iface, const char *method,
             GVariant *params, GDBusMethodInvocation *inv, gpointer user)
{
  Fake *f = user;
  FakeCall *c = g_new0 (FakeCall, 1);

  c->method = g_strdup (method);
  c->params = g_variant_ref (params);
  g_mutex_lock (&f->lock);
  g_ptr_array_add (f->calls, c);
  g_mutex_unlock (&f->lock);
  if (g_strcmp0 (f->fail, method) == 0)
    g_dbus_method_invocation_return_dbus_error (inv, "org.freedesktop.DBus.Error.AccessDenied", "the test says no");
  else
    g_dbus_method_invocation_return_value (inv, NULL);
}

static const GDBusInterfaceVTable fake_vtable = { fake_method, NULL, NULL, { 0 } };

/* The service answers on a thread of its own: the code under test blocks
 * in its calls. */
static gpointer
fake_thread (gpointer data)
{
  Fake *f = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusConnection) conn = NULL;
  g_autoptr (GDBusNodeInfo) node = NULL;
  guint id;

  g_main_context_push_thread_default (f->ctx);
  conn = g_dbus_connection_new_for_address_sync (bus_address (),
                                                 G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
                                                   | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                 NULL, NULL, &error);
  g_assert_no_error (error);
  node = g_dbus_node_info_new_for_xml (fake_xml, &error);
  g_assert_no_error (error);
  id = g_dbus_connection_register_object (conn, "/org/freedesktop/resolve1", node->interfaces[0], &fake_vtable, f,
                                          NULL, &error);
  g_assert_no_error (error);
  if (f->own_name)
    {
      g_autoptr (GVariant) ret = NULL;
      guint32 reply = 0;

      ret = g_dbus_connection_call_sync (conn, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                         "org.freedesktop.DBus", "RequestName",
                                         g_variant_new ("(su)", "org.freedesktop.resolve1", 4u), G_VARIANT_TYPE ("(u)"),
                                         G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
      g_assert_no_error (error);
      g_variant_get (ret, "(u)", &reply);
      g_assert_cmpuint (reply, ==, 1);  /* the primary owner */
    }
  g_mutex_lock (&f->lock);
  f->ready = TRUE;
  g_cond_signal (&f->cond);
  g_mutex_unlock (&f->lock);
  g_main_loop_run (f->loop);
  g_dbus_connection_unregister_object (conn, id);
  g_dbus_connection_close_sync (conn, NULL, NULL);
  g_main_context_pop_thread_default (f->ctx);
  return NULL;
}

static Fake *
fake_start (gboolean own_name, const char *fail)
{
  Fake *f = g_new0 (Fake, 1);

  bus_address ();
  f->own_name = own_name;
  f->fail = fail;
  f->ctx = g_main_context_new ();
  f->loop = g_main_loop_new (f->ctx, FALSE);
  f->calls = g_ptr_array_new_with_free_func (fake_call_free);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->thread = g_thread_new ("fake-resolved", fake_thread, f);
  g_mutex_lock (&f->lock);
  while (!f->ready)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  return f;
}

static void
fake_stop (Fake *f)
{
  g_main_loop_quit (f->loop);
  g_thread_join (f->thread);
  g_main_loop_unref (f->loop);
  g_main_context_unref (f->ctx);
  g_ptr_array_unref (f->calls);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
  g_free (f);
}

/* "Method" calls so far, as "SetLinkDNS (42, ...)" texts. */
static char *
fake_calls (Fake *f)
{
  GString *s = g_string_new (NULL);

  g_mutex_lock (&f->lock);
  for (guint i = 0; i < f->calls->len; i++)
    {
      const FakeCall *c = f->calls->pdata[i];
      g_autofree char *p = g_variant_print (c->params, FALSE);

      g_string_append_printf (s, "%s%s %s", i > 0 ? "; " : "", c->method, p);
    }
  g_ptr_array_set_size (f->calls, 0);
  g_mutex_unlock (&f->lock);
  return g_string_free (s, FALSE);
}

static ModikeAddr
addr (const char *text)
{
  g_autoptr (GError) error = NULL;
  ModikeAddr a;

  g_assert_true (modike_addr_parse (text, 0, &a, &error));
  g_assert_no_error (error);
  return a;
}

/* resolved on the bus: SetLinkDNS and SetLinkDomains for the link, and
 * RevertLink on clear; resolv.conf is not touched. */
static void
test_resolved_calls (void)
{
  Tree t;
  Fake *f = fake_start (TRUE, NULL);
  g_autoptr (TunDns) dns = tun_dns_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *calls = NULL;
  ModikeAddr servers[] = { addr ("192.0.2.53"), addr ("2001:db8::35") };
  const char *domains[] = { "corp.example", "lab.example", NULL };
  TunDnsBackend backend = TUN_DNS_NONE;

  tree_init (&t, original_text);
  tun_dns_set_bus_address (dns, bus_address ());
  tun_dns_configure (dns, t.resolv, t.run);
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 42, servers, 2, domains, &error));
  g_assert_no_error (error);
  g_assert_cmpint (backend, ==, TUN_DNS_RESOLVED);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==,
                   "SetLinkDNS (42, [(2, [0xc0, 0x00, 0x02, 0x35]), (10, [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, "
                   "0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x35])]); "
                   "SetLinkDomains (42, [('corp.example', false), ('lab.example', false)])");
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  tun_dns_clear (dns, &backend, "modike0", 42);
  g_assert_cmpint (backend, ==, TUN_DNS_NONE);
  g_clear_pointer (&calls, g_free);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==, "RevertLink (42,)");
  /* Cleared already: nothing more. */
  tun_dns_clear (dns, &backend, "modike0", 42);
  g_clear_pointer (&calls, g_free);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==, "");
  fake_stop (f);
  tree_clear (&t);
}

/* resolved refuses: the error names the call, and what was set goes. */
static void
test_resolved_failure (void)
{
  Tree t;
  Fake *f = fake_start (TRUE, "SetLinkDomains");
  g_autoptr (TunDns) dns = tun_dns_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *calls = NULL;
  ModikeAddr servers[] = { addr ("192.0.2.53") };
  const char *domains[] = { "corp.example", NULL };
  TunDnsBackend backend = TUN_DNS_NONE;

  tree_init (&t, original_text);
  tun_dns_set_bus_address (dns, bus_address ());
  tun_dns_configure (dns, t.resolv, t.run);
  g_assert_false (tun_dns_set (dns, &backend, "modike0", 7, servers, 1, domains, &error));
  g_assert_nonnull (error);
  g_assert_cmpstr (error->message, ==, "systemd-resolved SetLinkDomains on link 7: the test says no");
  g_assert_cmpint (backend, ==, TUN_DNS_NONE);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==,
                   "SetLinkDNS (7, [(2, [0xc0, 0x00, 0x02, 0x35])]); "
                   "SetLinkDomains (7, [('corp.example', false)]); RevertLink (7,)");
  assert_original (t.resolv);
  fake_stop (f);
  tree_clear (&t);
}

/* Which back end: resolved when its name is on the bus (an object
 * without the name does not count), resolv.conf otherwise and when there
 * is no bus; a set after resolved came takes the DNS out of resolv.conf.
 * Domains that are not domain names go nowhere. */
static void
test_choice (void)
{
  Tree t;
  g_autoptr (TunDns) dns = tun_dns_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *calls = NULL;
  g_autofree char *now = NULL;
  g_autofree char *nobus = NULL;
  ModikeAddr servers[] = { addr ("192.0.2.53") };
  const char *domains[] = { "corp.example", "evil\nnameserver 203.0.113.66", "a b", NULL };
  TunDnsBackend backend = TUN_DNS_NONE;
  Fake *f;

  tree_init (&t, original_text);
  nobus = g_strdup_printf ("unix:path=%s/no-bus", t.dir);
  tun_dns_set_bus_address (dns, nobus);
  tun_dns_configure (dns, t.resolv, t.run);
  warnings_expected = TRUE;
  g_string_truncate (logged, 0);
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, servers, 1, domains, &error));
  warnings_expected = FALSE;
  {
    g_autofree char *log = g_strdup (logged->str);

    assert_logged ("WARNING: modike0: DNS domain \"evil\\nnameserver 203.0.113.66\" ignored: not a domain name");
    g_string_assign (logged, log);
    assert_logged ("WARNING: modike0: DNS domain \"a b\" ignored: not a domain name");
  }
  g_assert_no_error (error);
  g_assert_cmpint (backend, ==, TUN_DNS_RESOLV_CONF);
  now = read_text (t.resolv);
  g_assert_nonnull (strstr (now, "\nnameserver 192.0.2.53\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
                                 "search corp.example example.org lab.example\n"));
  g_assert_null (strstr (now, "203.0.113.66"));
  g_assert_null (strstr (now, "a b"));
  tun_dns_clear (dns, &backend, "modike0", 3);
  assert_original (t.resolv);

  /* A bus, an object, no name. */
  f = fake_start (FALSE, NULL);
  tun_dns_set_bus_address (dns, bus_address ());
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, servers, 1, no_strv, &error));
  g_assert_no_error (error);
  g_assert_cmpint (backend, ==, TUN_DNS_RESOLV_CONF);
  g_clear_pointer (&now, g_free);
  now = read_text (t.resolv);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for modike0;"));
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==, "");
  fake_stop (f);

  /* resolved comes: the next set goes there, resolv.conf gets its
   * original back. */
  f = fake_start (TRUE, NULL);
  g_assert_true (tun_dns_set (dns, &backend, "modike0", 3, servers, 1, no_strv, &error));
  g_assert_no_error (error);
  g_assert_cmpint (backend, ==, TUN_DNS_RESOLVED);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));
  g_clear_pointer (&calls, g_free);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==, "SetLinkDNS (3, [(2, [0xc0, 0x00, 0x02, 0x35])]); SetLinkDomains (3, [])");
  tun_dns_clear (dns, &backend, "modike0", 3);
  g_clear_pointer (&calls, g_free);
  calls = fake_calls (f);
  g_assert_cmpstr (calls, ==, "RevertLink (3,)");
  fake_stop (f);
  tree_clear (&t);
}

/* ---- the plugin ---- */

extern const ModikePluginDescriptor *modike_plugin_descriptor (void);

static gboolean
apply_xml (ModikeRegistry *reg, const char *xml, GError **error)
{
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (xml, "test.xml", error);
  g_autoptr (GHashTable) fragments = NULL;

  if (cfg == NULL)
    return FALSE;
  fragments = modike_registry_config_fragments (reg);
  return modike_config_check_plugins (cfg, fragments, error) && modike_registry_apply_config (reg, cfg, error);
}

/* Through the loader: <tun> names the files, its first apply restores
 * what a killed modiked left, and the adapter's ops set and clear DNS
 * (destroy clears too). */
static void
test_plugin (void)
{
  Tree t;
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (ModikeLoader) loader = modike_loader_new (reg, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *nobus = NULL;
  g_autofree char *now = NULL;
  const char *names[] = { "tun", NULL };
  const ModikeOsAdapterOps *ops;
  ModikeAddr servers[] = { addr ("192.0.2.53") };
  const char *domains[] = { "corp.example", NULL };
  gpointer user = NULL, ad;

  if (!need_namespaces ())
    return;
  tree_init (&t, original_text);
  reap (child_sets (&t, FALSE, NULL));
  modike_loader_add_static (loader, modike_plugin_descriptor ());
  g_assert_true (modike_loader_load (loader, names, &error));
  g_assert_no_error (error);
  ops = modike_registry_os_adapter (reg, &user);
  g_assert_nonnull (ops->set_dns);
  g_assert_nonnull (ops->clear_dns);
  nobus = g_strdup_printf ("unix:path=%s/no-bus", t.dir);
  tun_dns_set_bus_address (user, nobus);

  g_assert_false (apply_xml (reg, "<modike><tun resolv-conf=\"etc/resolv.conf\"/></modike>", &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "not an absolute path"));
  g_clear_error (&error);
  g_assert_false (apply_xml (reg, "<modike><tun resolv=\"/x\"/></modike>", &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  /* Nothing applied yet: the leftover is still there. */
  g_assert_true (g_file_test (t.state, G_FILE_TEST_EXISTS));

  xml = g_strdup_printf ("<modike><tun resolv-conf=\"%s\" state-dir=\"%s\"/></modike>", t.resolv, t.run);
  g_string_truncate (logged, 0);
  g_assert_true (apply_xml (reg, xml, &error));
  assert_logged ("MESSAGE: *resolv.conf: the original is back from*");
  g_assert_no_error (error);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  ad = ops->create (user, "mkt-dns", 1, 0, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ad);
  g_assert_true (ops->set_dns (ad, servers, 1, domains, &error));
  g_assert_no_error (error);
  now = read_text (t.resolv);
  g_assert_true (g_str_has_prefix (now, TUN_DNS_MARKER " for mkt-dns;"));
  g_assert_nonnull (strstr (now, "\nnameserver 192.0.2.53\n"));
  ops->clear_dns (ad);
  assert_original (t.resolv);
  g_assert_true (ops->set_dns (ad, servers, 1, domains, &error));
  g_assert_no_error (error);
  ops->destroy (ad);
  assert_original (t.resolv);
  g_assert_false (g_file_test (t.state, G_FILE_TEST_EXISTS));

  /* An adapter made outside the plugin has no DNS. */
  ad = tun_adapter_new ("mkt-dns2", 1, 0, &error);
  g_assert_no_error (error);
  g_assert_false (ops->set_dns (ad, servers, 1, domains, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  tun_adapter_free (ad);

  modike_loader_unload_all (loader);
  tree_clear (&t);
}

int
main (int argc, char **argv)
{
  int ret;

  logged = g_string_new (NULL);
  g_log_set_writer_func (writer, NULL, NULL);
  g_test_init (&argc, &argv, NULL);
  setup_namespaces ();
  /* The tests that fork come before any D-Bus thread. */
  g_test_add_func ("/tun/dns/resolvconf/set-clear", test_rc_set_clear);
  g_test_add_data_func ("/tun/dns/resolvconf/two-first-out-first", GINT_TO_POINTER (TRUE), test_rc_two);
  g_test_add_data_func ("/tun/dns/resolvconf/two-last-out-first", GINT_TO_POINTER (FALSE), test_rc_two);
  g_test_add_func ("/tun/dns/resolvconf/symlink", test_rc_symlink);
  g_test_add_func ("/tun/dns/resolvconf/absent", test_rc_absent);
  g_test_add_func ("/tun/dns/resolvconf/bind-mount", test_rc_bind_mount);
  g_test_add_func ("/tun/dns/resolvconf/unwritable", test_rc_unwritable);
  g_test_add_func ("/tun/dns/resolvconf/disk-full", test_rc_disk_full);
  g_test_add_func ("/tun/dns/resolvconf/reconfigure", test_rc_reconfigure);
  g_test_add_func ("/tun/dns/resolvconf/foreign", test_rc_foreign);
  g_test_add_func ("/tun/dns/resolvconf/crash", test_rc_crash);
  g_test_add_func ("/tun/dns/resolvconf/live-owner", test_rc_live_owner);
  g_test_add_func ("/tun/dns/plugin/ops", test_plugin);
  g_test_add_func ("/tun/dns/resolved/calls", test_resolved_calls);
  g_test_add_func ("/tun/dns/resolved/failure", test_resolved_failure);
  g_test_add_func ("/tun/dns/resolved/choice", test_choice);
  ret = g_test_run ();
  if (test_bus != NULL)
    {
      g_test_dbus_down (test_bus);
      g_object_unref (test_bus);
    }
  g_free (ns_error);
  g_string_free (logged, TRUE);
  return ret;
}

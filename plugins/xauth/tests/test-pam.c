/* Suite xauth, PAM back end: real pam_unix checks against throwaway
 * system users and a PAM service file of our own in /etc/pam.d (so it
 * needs root, as CI has; without root every test fails saying so). The
 * parent process creates the users and service files, runs each test in a
 * subprocess and removes them all at the end, also when a test failed.
 * A second service puts pam_exec in front, which waits for a file the
 * test creates from the main loop: a verdict can then only come if the
 * main loop kept running while PAM was busy. */
#include "xauth-fixture.h"

#include <glib/gstdio.h>
#include <unistd.h>

#define PW "Pam-test-pw-1"

static struct {
  char *service, *gate_service;  /* /etc/pam.d names */
  char *user, *locked, *expired; /* system users, password PW */
  char *dir;                     /* gate script and gate file */
} env;

static char *
gate_file (void)
{
  return g_build_filename (env.dir, "open", NULL);
}

/* ---- the verifier alone, with the main loop ---- */

typedef struct {
  GString *log;
  guint verdicts;
  XauthCheck last;
} Rec;

static void
rec_done (gpointer data, XauthCheck v)
{
  Rec *r = data;

  r->verdicts++;
  r->last = v;
  g_string_append_c (r->log, v == XAUTH_CHECK_OK ? 'v' : 'f');
}

static guint
check_async (XauthPam *p, const char *user, const char *pw, Rec *r)
{
  g_autoptr (ModikeSecret) s = modike_secret_new_from (pw, strlen (pw));
  guint before = r->verdicts;
  guint id = xauth_pam_check (p, user, s, NULL, rec_done, r);

  /* Never inside check: a worker thread runs PAM. */
  g_assert_cmpuint (id, !=, 0);
  g_assert_cmpuint (r->verdicts, ==, before);
  return id;
}

static XauthCheck
check_one (const char *user, const char *pw)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (XauthPam) p = xauth_pam_new (env.service, XAUTH_PAM_PARALLEL, &error);
  Rec r = { g_string_new (NULL), 0, 0 };

  g_assert_no_error (error);
  check_async (p, user, pw, &r);
  while (r.verdicts == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (xauth_pam_pending (p), ==, 0);
  g_string_free (r.log, TRUE);
  return r.last;
}

static void
test_right_password (void)
{
  g_assert_cmpint (check_one (env.user, PW), ==, XAUTH_CHECK_OK);
}

static void
test_wrong_password (void)
{
  g_assert_cmpint (check_one (env.user, PW "x"), ==, XAUTH_CHECK_FAIL);
  g_assert_cmpint (check_one (env.user, ""), ==, XAUTH_CHECK_FAIL);
}

static void
test_unknown_user (void)
{
  g_autofree char *nobody = g_strdup_printf ("%sz", env.user);

  g_assert_cmpint (check_one (nobody, PW), ==, XAUTH_CHECK_FAIL);
}

/* usermod -L: pam_authenticate refuses. */
static void
test_locked_account (void)
{
  g_assert_cmpint (check_one (env.locked, PW), ==, XAUTH_CHECK_FAIL);
}

/* usermod -e: the password is right, pam_acct_mgmt refuses. */
static void
test_expired_account (void)
{
  g_assert_cmpint (check_one (env.expired, PW), ==, XAUTH_CHECK_FAIL);
}

/* A password with a NUL byte cannot go through PAM: refused at once. */
static void
test_nul_in_password (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (XauthPam) p = xauth_pam_new (env.service, XAUTH_PAM_PARALLEL, &error);
  g_autoptr (ModikeSecret) s = modike_secret_new_from (PW "\0x", sizeof PW + 1);
  Rec r = { g_string_new (NULL), 0, 0 };

  g_assert_cmpuint (xauth_pam_check (p, env.user, s, NULL, rec_done, &r), ==, 0);
  g_assert_cmpuint (r.verdicts, ==, 1);
  g_assert_cmpint (r.last, ==, XAUTH_CHECK_FAIL);
  g_string_free (r.log, TRUE);
}

typedef struct {
  XauthPam *p;
  Rec *r;
  guint ticks;
} Gate;

/* On the main loop: once 4 checks are inside PAM, a few more ticks (a 5th
 * would have had time to enter), then open the gate. */
static gboolean
open_gate_when_full (gpointer data)
{
  Gate *g = data;
  g_autofree char *open = gate_file ();

  if (xauth_pam_peak (g->p) < XAUTH_PAM_PARALLEL || g->ticks++ < 20)
    return G_SOURCE_CONTINUE;
  g_string_append_c (g->r->log, 'g');
  g_assert_true (g_file_set_contents (open, "", 0, NULL));
  return G_SOURCE_REMOVE;
}

/* Six checks at once: at most four inside PAM, the rest queued; the main
 * loop runs meanwhile (it opens the gate: no verdict can come before). */
static void
test_main_loop_runs_and_bounded (void)
{
  g_autoptr (GError) error = NULL;
  XauthPam *p = xauth_pam_new (env.gate_service, XAUTH_PAM_PARALLEL, &error);
  Rec r = { g_string_new (NULL), 0, 0 };
  Gate g = { p, &r, 0 };
  g_autofree char *open = gate_file ();

  g_assert_no_error (error);
  g_unlink (open);
  for (guint i = 0; i < 6; i++)
    check_async (p, env.user, PW, &r);
  g_assert_cmpuint (xauth_pam_pending (p), ==, 6);
  g_timeout_add (10, open_gate_when_full, &g);
  while (r.verdicts < 6)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (r.log->str, ==, "gvvvvvv");
  g_assert_cmpuint (xauth_pam_peak (p), ==, XAUTH_PAM_PARALLEL);
  g_assert_cmpuint (xauth_pam_pending (p), ==, 0);
  xauth_pam_free (p);
  g_unlink (open);
  g_string_free (r.log, TRUE);
}

static gboolean
open_gate (gpointer data)
{
  g_autofree char *open = gate_file ();

  g_assert_true (g_file_set_contents (open, "", 0, NULL));
  return G_SOURCE_REMOVE;
}

/* A cancelled check's verdict goes nowhere; freeing the verifier with a
 * check in flight (the gateway's SA or config gone) waits for the worker
 * and drops its verdict. */
static void
test_cancel_and_free (void)
{
  g_autoptr (GError) error = NULL;
  XauthPam *p = xauth_pam_new (env.gate_service, XAUTH_PAM_PARALLEL, &error);
  Rec gone = { g_string_new (NULL), 0, 0 }, kept = { g_string_new (NULL), 0, 0 };
  g_autofree char *open = gate_file ();
  guint id;

  g_assert_no_error (error);
  g_unlink (open);
  id = check_async (p, env.user, PW, &gone);
  check_async (p, env.user, PW, &kept);
  xauth_pam_cancel (p, id);
  g_idle_add (open_gate, NULL);
  while (kept.verdicts == 0 || xauth_pam_pending (p) > 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (kept.last, ==, XAUTH_CHECK_OK);
  check_async (p, env.user, PW, &gone);
  xauth_pam_free (p);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (gone.verdicts, ==, 0);
  g_unlink (open);
  g_string_free (gone.log, TRUE);
  g_string_free (kept.log, TRUE);
}

/* ---- end to end: two engines (the fsm harness), B checks through PAM ---- */

typedef struct {
  Net *net;
  Node *a, *b;
  Xauth *xb;
} E2e;

static void
e2e_init (E2e *e, const char *client_pw)
{
  g_autofree char *pwfile = g_build_filename (env.dir, "client-pw", NULL);
  g_autofree char *pw = g_strdup_printf ("%s\n", client_pw);
  g_autofree char *sa = NULL, *sb = NULL;
  g_autoptr (GError) error = NULL;
  Params p = params_default ();

  g_assert_true (g_file_set_contents (pwfile, pw, -1, NULL));
  e->net = net_new ();
  e->a = node_alloc (e->net, "a", "192.0.2.2");
  e->b = node_alloc (e->net, "b", "192.0.2.1");
  load_plugin (e->a);
  e->xb = load_plugin (e->b);
  sa = g_strdup_printf ("<xauth><credentials peer=\"b\" user=\"%s\" password-file=\"%s\"/></xauth>", env.user,
                        pwfile);
  sb = g_strdup_printf ("<xauth pam-service=\"%s\" retries=\"2\"/>", env.service);
  g_assert_true (configure (e->a, &p, TRUE, sa, &error));
  g_assert_no_error (error);
  g_assert_true (configure (e->b, &p, FALSE, sb, &error));
  g_assert_no_error (error);
  g_assert_nonnull (e->xb->pam);
  g_assert_true (modike_ike_initiate (e->a->ike, "b", NULL));
}

/* The mock clock stands still while a check is in PAM (real time): with
 * nothing else to deliver, wait on the main loop for the verdict. */
static void
pump (E2e *e)
{
  while (xauth_pam_pending (e->xb->pam) > 0 && g_queue_is_empty (&e->net->queue))
    g_main_context_iteration (NULL, TRUE);
}

static gboolean
pred_up_pam (Net *net, gpointer user)
{
  E2e *e = user;
  UpWant w = { e->a, e->b, 1 };

  pump (e);
  return pred_up (net, &w);
}

static gboolean
pred_gone_pam (Net *net, gpointer user)
{
  E2e *e = user;

  pump (e);
  return modike_ike_count_sas (e->a->ike, FALSE) == 0 && modike_ike_count_sas (e->b->ike, FALSE) == 0;
}

static void
test_e2e_success (void)
{
  E2e e;

  e2e_init (&e, PW);
  g_assert_true (net_run (e.net, 60000, pred_up_pam, &e));
  check_pair (e.a, e.b, 1);
  assert_no_failures (e.a, e.b);
  net_free (e.net);
}

/* Wrong twice (retries="2"): XAUTH_STATUS FAIL, both sides end. */
static void
test_e2e_wrong_password (void)
{
  g_autofree char *want = g_strdup_printf ("extended authentication failed for user '%s'", env.user);
  E2e e;

  e2e_init (&e, PW "x");
  g_assert_true (net_run (e.net, 120000, pred_gone_pam, &e));
  g_assert_cmpuint (e.a->p2_up, ==, 0);
  g_assert_cmpuint (e.b->p2_up, ==, 0);
  g_assert_cmpuint (e.a->p1_failed, >=, 1);
  g_assert_nonnull (e.a->p1_error);
  g_assert_nonnull (strstr (e.a->p1_error->message, want));
  net_free (e.net);
}

static void
test_config (void)
{
  Net *net = net_new ();
  Node *b = node_alloc (net, "b", "192.0.2.1");
  g_autoptr (GError) error = NULL;
  Params p = params_default ();
  g_autofree char *both = g_strdup_printf ("<xauth users-file=\"/nonexistent\" pam-service=\"%s\"/>", env.service);

  Xauth *xb = load_plugin (b);
  g_autofree char *good = g_strdup_printf ("<xauth pam-service=\"%s\"/>", env.service);
  XauthPam *first;

  g_assert_false (configure (b, &p, FALSE, both, &error));
  g_assert_nonnull (strstr (error->message, "b:"));
  g_assert_nonnull (strstr (error->message, ": <xauth>: users-file and pam-service exclude each other"));
  g_clear_error (&error);
  g_assert_false (configure (b, &p, FALSE, "<xauth retries=\"2\"/>", &error));
  g_assert_nonnull (strstr (error->message, ": <xauth>: a gateway needs a back end: users-file or pam-service"));
  g_clear_error (&error);
  g_assert_false (configure (b, &p, FALSE, "<xauth pam-service=\"../passwd\"/>", &error));
  g_assert_nonnull (strstr (error->message, "bad pam-service '../passwd'"));
  g_clear_error (&error);
  /* A reload that keeps the service keeps the back end (and its checks in
   * flight); a refused one leaves it alone. */
  g_assert_true (configure (b, &p, FALSE, good, &error));
  g_assert_no_error (error);
  first = xb->pam;
  g_assert_nonnull (first);
  g_assert_true (configure (b, &p, FALSE, good, &error));
  g_assert_true (xb->pam == first);
  g_assert_false (configure (b, &p, FALSE, both, &error));
  g_clear_error (&error);
  g_assert_true (xb->pam == first);
  g_assert_true (configure (b, &p, FALSE, "<xauth/>", &error));
  g_assert_null (xb->pam);
  net_free (net);
}

/* ---- the parent: system users and service files around the subprocesses ---- */

static gboolean
run (const char *cmd, GError **error)
{
  g_autofree char *out = NULL, *err = NULL;
  int status;

  if (!g_spawn_command_line_sync (cmd, &out, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "%s: %s", cmd, err);
      return FALSE;
    }
  return TRUE;
}

static gboolean
add_user (const char *name, const char *then, GError **error)
{
  g_autofree char *add = g_strdup_printf ("useradd -M -N -d /nonexistent -s /usr/sbin/nologin %s", name);
  g_autofree char *pw = g_strdup_printf ("sh -c \"printf '%%s\\n' '%s:%s' | chpasswd\"", name, PW);
  g_autofree char *extra = then != NULL ? g_strdup_printf ("usermod %s %s", then, name) : NULL;

  return run (add, error) && run (pw, error) && (extra == NULL || run (extra, error));
}

static gboolean
write_service (const char *name, const char *text, GError **error)
{
  g_autofree char *path = g_build_filename ("/etc/pam.d", name, NULL);

  return g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_NONE, 0644, error);
}

static gboolean
setup (GError **error)
{
  int pid = getpid ();
  g_autofree char *script = NULL, *gate = NULL, *open = NULL;

  env.service = g_strdup_printf ("modike-xauth-test-%d", pid);
  env.gate_service = g_strdup_printf ("modike-xauth-test-gate-%d", pid);
  env.user = g_strdup_printf ("mxat%d", pid);
  env.locked = g_strdup_printf ("mxal%d", pid);
  env.expired = g_strdup_printf ("mxae%d", pid);
  if ((env.dir = g_dir_make_tmp ("xauth-pam-XXXXXX", error)) == NULL)
    return FALSE;
  /* At most about a minute closed, so a broken test cannot hang PAM. */
  script = g_build_filename (env.dir, "gate.sh", NULL);
  open = gate_file ();
  gate = g_strdup_printf ("#!/bin/sh\nn=0\nwhile [ ! -e '%s' ]; do\n  sleep 0.05\n  n=$((n+1))\n"
                          "  [ $n -lt 1200 ] || exit 1\ndone\nexit 0\n",
                          open);
  if (!g_file_set_contents_full (script, gate, -1, G_FILE_SET_CONTENTS_NONE, 0755, error))
    return FALSE;
  {
    g_autofree char *gated = g_strdup_printf ("auth requisite pam_exec.so quiet %s\n"
                                              "auth required pam_unix.so\naccount required pam_unix.so\n",
                                              script);

    if (!write_service (env.service, "auth required pam_unix.so\naccount required pam_unix.so\n", error)
        || !write_service (env.gate_service, gated, error))
      return FALSE;
  }
  return add_user (env.user, NULL, error) && add_user (env.locked, "-L", error)
         && add_user (env.expired, "-e 1", error);
}

static void
cleanup (void)
{
  const char *users[] = { env.user, env.locked, env.expired };
  const char *services[] = { env.service, env.gate_service };

  for (guint i = 0; i < G_N_ELEMENTS (users); i++)
    if (users[i] != NULL)
      {
        g_autofree char *cmd = g_strdup_printf ("userdel %s", users[i]);
        g_autoptr (GError) error = NULL;

        run (cmd, &error);
      }
  for (guint i = 0; i < G_N_ELEMENTS (services); i++)
    if (services[i] != NULL)
      {
        g_autofree char *path = g_build_filename ("/etc/pam.d", services[i], NULL);

        g_unlink (path);
      }
  if (env.dir != NULL)
    {
      const char *files[] = { "gate.sh", "open", "client-pw" };

      for (guint i = 0; i < G_N_ELEMENTS (files); i++)
        {
          g_autofree char *path = g_build_filename (env.dir, files[i], NULL);

          g_unlink (path);
        }
      g_rmdir (env.dir);
    }
}

static void
test_in_subprocess (gconstpointer body)
{
  if (g_test_subprocess ())
    {
      ((GTestFunc) body) ();
      return;
    }
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDOUT | G_TEST_SUBPROCESS_INHERIT_STDERR);
  if (!g_test_trap_has_passed ())
    g_test_fail_printf ("the test failed in its subprocess (output above)");
}

static const char *setup_error;

static void
test_prerequisites (void)
{
  if (setup_error != NULL)
    g_test_fail_printf ("%s", setup_error);
}

#define ADD(path, fn) g_test_add_data_func (path, (gconstpointer) (fn), test_in_subprocess)

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int rc;

  /* The parent goes on after a failed test (GLib would abort it) so that
   * the users and service files are always removed. */
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  char **argv2;
  int argc2 = argc + 1;

  for (int i = 0; i < argc; i++)
    g_ptr_array_add (args, argv[i]);
  g_ptr_array_add (args, (char *) "--keep-going");
  g_ptr_array_add (args, NULL);
  argv2 = (char **) args->pdata;
  g_test_init (&argc2, &argv2, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
  if (g_test_subprocess ())
    {
      /* The parent's names. */
      env.service = g_strdup (g_getenv ("XAUTH_PAM_SERVICE"));
      env.gate_service = g_strdup (g_getenv ("XAUTH_PAM_GATE_SERVICE"));
      env.user = g_strdup (g_getenv ("XAUTH_PAM_USER"));
      env.locked = g_strdup (g_getenv ("XAUTH_PAM_LOCKED"));
      env.expired = g_strdup (g_getenv ("XAUTH_PAM_EXPIRED"));
      env.dir = g_strdup (g_getenv ("XAUTH_PAM_DIR"));
    }
  else if (geteuid () != 0)
    setup_error = "the PAM tests need root (they add system users and /etc/pam.d files); CI runs them as root";
  else if (!setup (&error))
    setup_error = g_strdup_printf ("could not set up users and PAM services: %s", error->message);
  else
    {
      g_setenv ("XAUTH_PAM_SERVICE", env.service, TRUE);
      g_setenv ("XAUTH_PAM_GATE_SERVICE", env.gate_service, TRUE);
      g_setenv ("XAUTH_PAM_USER", env.user, TRUE);
      g_setenv ("XAUTH_PAM_LOCKED", env.locked, TRUE);
      g_setenv ("XAUTH_PAM_EXPIRED", env.expired, TRUE);
      g_setenv ("XAUTH_PAM_DIR", env.dir, TRUE);
    }
  g_test_add_func ("/xauth-pam/prerequisites", test_prerequisites);
  if (setup_error == NULL)
    {
      ADD ("/xauth-pam/right-password", test_right_password);
      ADD ("/xauth-pam/wrong-password", test_wrong_password);
      ADD ("/xauth-pam/unknown-user", test_unknown_user);
      ADD ("/xauth-pam/locked-account", test_locked_account);
      ADD ("/xauth-pam/expired-account", test_expired_account);
      ADD ("/xauth-pam/nul-in-password", test_nul_in_password);
      ADD ("/xauth-pam/main-loop-runs-and-bounded", test_main_loop_runs_and_bounded);
      ADD ("/xauth-pam/cancel-and-free", test_cancel_and_free);
      ADD ("/xauth-pam/config", test_config);
      ADD ("/xauth-pam/e2e-success", test_e2e_success);
      ADD ("/xauth-pam/e2e-wrong-password", test_e2e_wrong_password);
    }
  rc = g_test_run ();
  if (!g_test_subprocess ())
    cleanup ();
  return rc;
}

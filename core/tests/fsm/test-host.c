/* Suite fsm: host services (modike/host.h): a plugin's credential request
 * reaches the host and the answer comes back to the plugin while the SA
 * lives; an answer after the SA died only frees; without a host the
 * request fails; stage and banner reports reach the host. */
#include "harness.h"

#include <modike/host.h>

typedef struct {
  GString *log;
  ModikeHostCredentialsDone done;
  gpointer token;
  char *asked;               /* "peer prompt field,field*" */
} FakeHost;

static void
host_request (gpointer host, const char *peer, const char *prompt, const ModikeCredentialField *fields,
              guint n_fields, ModikeHostCredentialsDone done, gpointer token)
{
  FakeHost *h = host;
  GString *s = g_string_new (NULL);

  g_assert_null (h->done);   /* one at a time in these tests */
  g_string_append_printf (s, "%s %s", peer, prompt);
  for (guint i = 0; i < n_fields; i++)
    g_string_append_printf (s, "%s%s%s", i ? "," : " ", fields[i].name, fields[i].secret ? "*" : "");
  g_free (h->asked);
  h->asked = g_string_free (s, FALSE);
  h->done = done;
  h->token = token;
}

static void
host_stage (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error)
{
  FakeHost *h = host;

  g_string_append_printf (h->log, "stage %s %s %s%s%s\n", peer, stage, up ? "up" : "failed", error ? " " : "",
                          error ? error->message : "");
}

static void
host_banner (gpointer host, const char *peer, const char *text)
{
  g_string_append_printf (((FakeHost *) host)->log, "banner %s %s\n", peer, text);
}

static const ModikeHostOps host_ops = {
  sizeof (ModikeHostOps), host_request, host_stage, host_banner,
};

static void
host_stage_detail (gpointer host, const char *peer, const char *stage, const char *detail)
{
  g_string_append_printf (((FakeHost *) host)->log, "stage %s %s up: %s\n", peer, stage, detail);
}

/* A host that shows details next to the stages (ABI 1.3). */
static const ModikeHostOps detail_ops = {
  sizeof (ModikeHostOps), host_request, host_stage, host_banner, host_stage_detail,
};

/* An older host that knows only request_credentials. */
static const ModikeHostOps short_ops = {
  G_STRUCT_OFFSET (ModikeHostOps, stage), host_request, host_stage, host_banner,
};

typedef struct {
  ModikeIkeSa *sa;
  char *user, *password;
  char *error;
  guint calls, destroyed;
} Answer;

static void
on_answer (ModikeIkeSa *sa, GHashTable *values, const GError *error, gpointer user)
{
  Answer *a = user;

  a->calls++;
  a->sa = sa;
  if (error)
    a->error = g_strdup (error->message);
  else
    {
      a->user = g_strdup (g_hash_table_lookup (values, "username"));
      a->password = g_strdup (g_hash_table_lookup (values, "password"));
    }
}

static void
on_destroy (gpointer user)
{
  ((Answer *) user)->destroyed++;
}

static void
answer_clear (Answer *a)
{
  g_free (a->user);
  g_free (a->password);
  g_free (a->error);
  memset (a, 0, sizeof *a);
}

static const ModikeCredentialField fields[] = {
  { "username", "User name", FALSE }, { "password", "Password", TRUE },
};

static void
answer_with (FakeHost *h, const char *user, const char *password)
{
  g_autoptr (GHashTable) v = g_hash_table_new (g_str_hash, g_str_equal);
  ModikeHostCredentialsDone done = h->done;

  g_hash_table_insert (v, (gpointer) "username", (gpointer) user);
  g_hash_table_insert (v, (gpointer) "password", (gpointer) password);
  h->done = NULL;
  done (v, NULL, h->token);
}

static void
test_host_services (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_up (&p, &a, &b, 1);
  FakeHost h = { g_string_new (NULL) };
  Answer ans = { 0 };
  ModikeIkeSa *sa = only_sa (a);
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) failure = g_error_new_literal (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "wrong password");

  /* No host: the request fails at once and nothing runs. */
  g_assert_false (modike_ike_sa_request_credentials (sa, "Login", fields, 2, on_answer, &ans, on_destroy, &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_cmpuint (ans.calls + ans.destroyed, ==, 0);
  modike_ike_sa_report_stage (sa, "xauth", TRUE, NULL);   /* goes nowhere, harmlessly */

  /* With a host: asked with the peer's name, answered to the plugin. */
  modike_ike_set_host (a->ike, &host_ops, &h);
  g_assert_true (modike_ike_sa_request_credentials (sa, "Login", fields, 2, on_answer, &ans, on_destroy, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (h.asked, ==, "b Login username,password*");
  g_assert_cmpuint (ans.calls, ==, 0);
  answer_with (&h, "alice", "secret");
  g_assert_cmpuint (ans.calls, ==, 1);
  g_assert_cmpuint (ans.destroyed, ==, 1);
  g_assert_true (ans.sa == sa);
  g_assert_cmpstr (ans.user, ==, "alice");
  g_assert_cmpstr (ans.password, ==, "secret");
  answer_clear (&ans);

  /* The host's refusal reaches the plugin as an error. */
  g_assert_true (modike_ike_sa_request_credentials (sa, "Login", fields, 2, on_answer, &ans, on_destroy, NULL));
  {
    g_autoptr (GError) cancelled = g_error_new_literal (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "cancelled");
    ModikeHostCredentialsDone done = h.done;

    h.done = NULL;
    done (NULL, cancelled, h.token);
  }
  g_assert_cmpuint (ans.calls, ==, 1);
  g_assert_cmpstr (ans.error, ==, "cancelled");
  g_assert_cmpuint (ans.destroyed, ==, 1);
  answer_clear (&ans);

  /* Stage and banner reports. */
  modike_ike_sa_report_stage (sa, "xauth", TRUE, NULL);
  modike_ike_sa_report_stage (sa, "modecfg", FALSE, failure);
  modike_ike_sa_report_banner (sa, "Authorised use only");
  g_assert_cmpstr (h.log->str, ==, "stage b xauth up\nstage b modecfg failed wrong password\n"
                                   "banner b Authorised use only\n");

  /* An answer after the SA is gone: fn does not run, destroy does. */
  g_assert_true (modike_ike_sa_request_credentials (sa, "Login", fields, 2, on_answer, &ans, on_destroy, NULL));
  modike_ike_terminate (a->ike, "b");
  net_run (net, 2000, NULL, NULL);
  assert_no_sas (a);
  answer_with (&h, "late", "late");
  g_assert_cmpuint (ans.calls, ==, 0);
  g_assert_cmpuint (ans.destroyed, ==, 1);
  answer_clear (&ans);

  /* A host whose ops struct predates stage and banner: they are skipped. */
  g_string_truncate (h.log, 0);
  modike_ike_set_host (b->ike, &short_ops, &h);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 10000));
  modike_ike_sa_report_stage (only_sa (b), "xauth", TRUE, NULL);
  modike_ike_sa_report_banner (only_sa (b), "hi");
  g_assert_cmpstr (h.log->str, ==, "");

  g_free (h.asked);
  g_string_free (h.log, TRUE);
  net_free (net);
}

/* A result on the peer's adapter reports the adapter and routes stages
 * (modike connect shows them); a refused address reports the failure. */
static void
test_host_result_stages (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ModikeSaResult) r = modike_sa_result_new ();
  g_autoptr (GError) error = NULL;
  FakeHost h = { g_string_new (NULL) };
  FakeDp da;
  FakeOs os = { 0 };
  ModikePrefix addr, net4;
  Node *a, *b;
  Net *net;

  fake_dp_init (&da, log);
  os.log = log;
  net = dp_pair_new (&p, &da, NULL, &os, &a, &b);
  modike_ike_set_host (a->ike, &host_ops, &h);
  bring_up (net, a, b, 1);
  g_assert_true (modike_prefix_parse ("10.99.0.5/32", &addr, NULL));
  g_assert_true (modike_prefix_parse ("10.2.0.0/24", &net4, NULL));
  modike_sa_result_add_address (r, &addr);
  modike_sa_result_add_route (r, &net4);
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (h.log->str, ==, "stage b adapter up\nstage b routes up\n");

  /* A host with details gets the adapter, its address and the networks. */
  g_string_truncate (h.log, 0);
  modike_ike_set_host (a->ike, &detail_ops, &h);
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (h.log->str, ==, "stage b adapter up: modike0 10.99.0.5/32\nstage b routes up: 10.2.0.0/24\n");

  g_string_truncate (h.log, 0);
  os.fail_address = TRUE;
  g_assert_false (modike_ike_sa_set_result (only_sa (a), r, &error));
  g_assert_nonnull (error);
  g_assert_true (g_str_has_prefix (h.log->str, "stage b adapter failed peer b: adapter modike0: "));
  modike_ike_set_host (a->ike, NULL, NULL);
  g_string_free (h.log, TRUE);
  net_free (net);
  fake_dp_clear (&da);
}

void
fsm_add_host_tests (void)
{
  g_test_add_func ("/fsm/host/services", test_host_services);
  g_test_add_func ("/fsm/host/result-stages", test_host_result_stages);
}

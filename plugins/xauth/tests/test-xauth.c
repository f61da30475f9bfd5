/* Suite xauth: A (192.0.2.2, the XAuth client, phase 1 initiator with
 * xauth-psk) and B (the gateway) in the fsm harness, with the plugin
 * loaded on both the way modiked loads it (descriptor, init, config
 * section); and the users file. */
#include "xauth-fixture.h"
#include "xauth.h"

#include <modike/host.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

#include <glib/gstdio.h>

#define ISAKMP_EXCHANGE_OFFSET 18
#define EX_QUICK 32

typedef struct {
  Net *net;
  Node *a, *b;
  Xauth *xa, *xb;
  char *dir;
  /* packet log: exchange type and sender of every packet */
  GString *seq;
  gboolean drop_tx_from_a, drop_tx_from_b;
  guint lose_tx;              /* bit n: lose the n-th transaction packet (from 0) */
  guint n_tx;
  /* scripted client passwords (NULL: the config's password file) */
  const char *const *passwords;
  guint n_asked;
  guint answer_after_ms, later_id, cancels;
  XauthCredsDone later_done;
  gpointer later_data;
  /* the fake host on A (modiked with a connect client attached) */
  GString *hlog;              /* "ask PEER PROMPT fields" and "stage ..." lines */
  const char *const *host_answers;   /* passwords in turn; "-" = the user cancels, "" = an empty answer */
  guint host_asked, host_after_ms, host_timer;
  ModikeHostCredentialsDone host_done;
  gpointer host_token;
} Fx;

static Fx *fx_now;

static FilterResult
fx_filter (Net *net, guint n, Packet *p, gpointer user)
{
  Fx *fx = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (p->data, &len);
  gboolean from_a = p->to == fx->b;
  guint8 ex = len > ISAKMP_EXCHANGE_OFFSET ? d[ISAKMP_EXCHANGE_OFFSET] : 0;

  if (ex == MODIKE_EX_TRANSACTION)
    g_string_append_c (fx->seq, from_a ? 't' : 'T');
  else if (ex == EX_QUICK)
    g_string_append_c (fx->seq, from_a ? 'q' : 'Q');
  if (ex == MODIKE_EX_TRANSACTION && ((from_a && fx->drop_tx_from_a) || (!from_a && fx->drop_tx_from_b)))
    return FILTER_DROP;
  if (ex == MODIKE_EX_TRANSACTION && fx->n_tx++ < 32 && (fx->lose_tx & (1u << (fx->n_tx - 1))))
    {
      g_string_append_c (fx->seq, 'x');
      return FILTER_DROP;
    }
  return FILTER_PASS;
}

static char *
write_file (Fx *fx, const char *name, const char *text)
{
  char *path = g_build_filename (fx->dir, name, NULL);

  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

/* A scripted credential source: the passwords in turn, the last one
 * repeated; at once, or answer_after_ms later (a user typing). */
static void
scripted_fill (Fx *fx, XauthCreds *c, gboolean want_password)
{
  guint n = g_strv_length ((char **) fx->passwords);
  const char *pw = fx->passwords[MIN (fx->n_asked, n - 1)];

  fx->n_asked++;
  c->user = g_strdup ("alice");
  if (want_password)
    c->password = modike_secret_new_from (pw, strlen (pw));
}

static gboolean
scripted_later (gpointer data)
{
  Fx *fx = data;
  XauthCreds c = { 0 };

  fx->later_id = 0;
  scripted_fill (fx, &c, TRUE);
  fx->later_done (fx->later_data, &c, NULL);
  xauth_creds_clear (&c);
  return G_SOURCE_REMOVE;
}

static guint
scripted_get (gpointer self, ModikeIkeSa *sa, gboolean want_password, gboolean want_passcode, XauthCredsDone done,
              gpointer done_data)
{
  Fx *fx = self;
  XauthCreds c = { 0 };

  if (fx->answer_after_ms > 0)
    {
      g_assert_cmpuint (fx->later_id, ==, 0);
      fx->later_done = done;
      fx->later_data = done_data;
      fx->later_id = fx->a->env.timer_add (fx->a->env.env, fx->answer_after_ms, scripted_later, fx);
      return fx->later_id;
    }
  scripted_fill (fx, &c, want_password);
  done (done_data, &c, NULL);
  xauth_creds_clear (&c);
  return 0;
}

static void
scripted_cancel (gpointer self, guint request)
{
  Fx *fx = self;

  g_assert_cmpuint (request, ==, fx->later_id);
  fx->a->env.timer_remove (fx->a->env.env, request);
  fx->later_id = 0;
  fx->cancels++;
}

static void
use_scripted (Fx *fx, const char *const *passwords)
{
  fx->passwords = passwords;
  fx->xa->source = (XauthCredSource){ scripted_get, scripted_cancel, fx };
}

static Fx *
fx_new (const char *b_extra)
{
  Fx *fx = g_new0 (Fx, 1);
  Params p = params_default ();
  g_autoptr (GError) error = NULL;
  g_autofree char *pwfile = NULL, *users = NULL, *entry = NULL, *sa = NULL, *sb = NULL;
  g_autofree char *codefile = NULL;

  fx->dir = g_dir_make_tmp ("xauth-XXXXXX", NULL);
  g_assert_nonnull (fx->dir);
  fx->seq = g_string_new (NULL);
  entry = xauth_users_make_entry ("alice", (const guint8 *) "alicepw", 7, 1000, &error);
  g_assert_no_error (error);
  users = write_file (fx, "users", entry);
  pwfile = write_file (fx, "pw", "alicepw\n");
  codefile = write_file (fx, "code", "123456\n");
  fx->net = net_new ();
  fx->a = node_alloc (fx->net, "a", "192.0.2.2");
  fx->b = node_alloc (fx->net, "b", "192.0.2.1");
  fx->xa = load_plugin (fx->a);
  fx->xb = load_plugin (fx->b);
  sa = g_strdup_printf ("<xauth><credentials peer=\"b\" user=\"alice\" password-file=\"%s\" passcode-file=\"%s\"/>"
                        "</xauth>",
                        pwfile, codefile);
  sb = g_strdup_printf ("<xauth users-file=\"%s\" %s/>", users, b_extra != NULL ? b_extra : "");
  g_assert_true (configure (fx->a, &p, TRUE, sa, &error));
  g_assert_no_error (error);
  g_assert_true (configure (fx->b, &p, FALSE, sb, &error));
  g_assert_no_error (error);
  fx->net->filter = fx_filter;
  fx->net->filter_user = fx;
  fx_now = fx;
  return fx;
}

static void
fx_free (Fx *fx)
{
  remove_tmp_dir (fx->dir);
  g_free (fx->dir);
  g_string_free (fx->seq, TRUE);
  if (fx->hlog != NULL)
    g_string_free (fx->hlog, TRUE);
  net_free (fx->net);
  g_free (fx);
  fx_now = NULL;
}

static void
start (Fx *fx)
{
  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
}

/* Runs until both nodes have no SA left (or limit). */
static gboolean
pred_no_sas (Net *net, gpointer user)
{
  Fx *fx = user;

  return modike_ike_count_sas (fx->a->ike, FALSE) == 0 && modike_ike_count_sas (fx->b->ike, FALSE) == 0;
}

static void
assert_error_has (const GError *e, const char *text)
{
  g_assert_nonnull (e);
  if (strstr (e->message, text) == NULL)
    g_error ("'%s' does not contain '%s'", e->message, text);
}

/* Both ended: no SA and no child anywhere; the side that gave up first
 * reports the failure (the other goes with its DELETE). */
static void
assert_both_failed (Fx *fx, const char *a_text, const char *b_text)
{
  g_assert_true (net_run (fx->net, 120000, pred_no_sas, fx));
  g_assert_cmpuint (fx->a->p2_up, ==, 0);
  g_assert_cmpuint (fx->b->p2_up, ==, 0);
  assert_no_sas (fx->a);
  assert_no_sas (fx->b);
  if (a_text != NULL)
    {
      g_assert_cmpuint (fx->a->p1_failed, >=, 1);
      assert_error_has (fx->a->p1_error, a_text);
    }
  if (b_text != NULL)
    {
      g_assert_cmpuint (fx->b->p1_failed, >=, 1);
      assert_error_has (fx->b->p1_error, b_text);
    }
}

static void
test_success (void)
{
  Fx *fx = fx_new (NULL);
  const char *q;

  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  /* REQUEST, REPLY, SET, ACK; Quick Mode only after them. */
  q = strpbrk (fx->seq->str, "qQ");
  g_assert_nonnull (q);
  g_assert_cmpint (q - fx->seq->str, ==, 4);
  g_assert_true (strncmp (fx->seq->str, "TtTt", 4) == 0);
  g_assert_null (strpbrk (q, "tT"));
  fx_free (fx);
}

/* Lost transaction messages (the first REQUEST, then the REPLY to the
 * retransmitted one) are the core's retransmission to repair: the client
 * answers once and the retransmitted REQUEST gets the stored REPLY. */
static void
test_loss (void)
{
  static const char *const pws[] = { "alicepw", NULL };
  Fx *fx = fx_new (NULL);

  use_scripted (fx, pws);
  fx->lose_tx = 1u << 0 | 1u << 2;
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  g_assert_cmpuint (fx->n_asked, ==, 1);
  g_assert_true (g_str_has_prefix (fx->seq->str, "TxTtxTtTt"));
  fx_free (fx);
}

/* The credentials come 3 s later (a user typing): the REQUEST's handler
 * suspends, the gateway's retransmissions meanwhile are dropped, the
 * REPLY goes out when the answer comes. */
static void
test_answer_later (void)
{
  static const char *const pws[] = { "alicepw", NULL };
  Fx *fx = fx_new (NULL);

  use_scripted (fx, pws);
  fx->answer_after_ms = 3000;
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  g_assert_cmpuint (fx->n_asked, ==, 1);
  g_assert_cmpuint (fx->cancels, ==, 0);
  g_assert_true (g_str_has_prefix (fx->seq->str, "TTt"));
  fx_free (fx);
}

/* Nobody answers before the gateway gives up: its failure deletes the SA,
 * the waiting request is cancelled and never answers. */
static void
test_answer_cancelled (void)
{
  static const char *const pws[] = { "alicepw", NULL };
  Fx *fx = fx_new ("timeout=\"10\"");

  use_scripted (fx, pws);
  fx->answer_after_ms = 60000;
  start (fx);
  assert_both_failed (fx, NULL, "client did not answer extended authentication within 10 s");
  g_assert_cmpuint (fx->cancels, ==, 1);
  g_assert_cmpuint (fx->n_asked, ==, 0);
  g_assert_cmpuint (fx->later_id, ==, 0);
  fx_free (fx);
}

static void
test_retry_then_success (void)
{
  static const char *const pws[] = { "wrong", "alicepw", NULL };
  Fx *fx = fx_new (NULL);

  use_scripted (fx, pws);
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  g_assert_cmpuint (fx->n_asked, ==, 2);
  g_assert_true (g_str_has_prefix (fx->seq->str, "TtTtTt"));
  fx_free (fx);
}

static void
test_retries_exhausted (void)
{
  static const char *const pws[] = { "wrong", NULL };
  Fx *fx = fx_new ("retries=\"2\"");

  use_scripted (fx, pws);
  start (fx);
  /* B logs "... (2 tries)" once A's ACK is in; A's DELETE may come first. */
  assert_both_failed (fx, "extended authentication failed for user 'alice'", NULL);
  g_assert_cmpuint (fx->n_asked, ==, 2);
  g_assert_null (strpbrk (fx->seq->str, "qQ"));
  fx_free (fx);
}

/* A one-time code as a second round: the verifier wants it after the
 * password and gives each verdict 1 s later (as PAM or RADIUS would), so
 * the gateway's handler suspends; the client answers from its
 * passcode-file. */
typedef struct {
  Fx *fx;
  XauthCheckDone done;
  gpointer data;
  XauthCheck verdict;
  guint calls;
} Otp;

static gboolean
otp_later (gpointer p)
{
  Otp *o = p;

  o->done (o->data, o->verdict);
  return G_SOURCE_REMOVE;
}

static guint
otp_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
           XauthCheckDone done, gpointer done_data)
{
  Otp *o = self;

  o->calls++;
  if (password != NULL)
    o->verdict = password->len == 7 && memcmp (password->data, "alicepw", 7) == 0 ? XAUTH_CHECK_NEED_PASSCODE
                                                                                 : XAUTH_CHECK_FAIL;
  else
    o->verdict = passcode != NULL && passcode->len == 6 && memcmp (passcode->data, "123456", 6) == 0
                   ? XAUTH_CHECK_OK
                   : XAUTH_CHECK_FAIL;
  o->done = done;
  o->data = done_data;
  return o->fx->b->env.timer_add (o->fx->b->env.env, 1000, otp_later, o);
}

static void
test_otp_round (void)
{
  Fx *fx = fx_new (NULL);
  Otp o = { fx };

  fx->xb->verifier = (XauthVerifier){ otp_check, NULL, &o };
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  g_assert_cmpuint (o.calls, ==, 2);
  g_assert_true (g_str_has_prefix (fx->seq->str, "TtTtTt"));
  fx_free (fx);
}

/* A verifier that never answers: the gateway's wait ends the SA, naming
 * the missing verdict, and the check is cancelled. */
static guint
silent_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
              XauthCheckDone done, gpointer done_data)
{
  return 7;
}

static void
silent_cancel (gpointer self, guint request)
{
  guint *cancels = self;

  g_assert_cmpuint (request, ==, 7);
  (*cancels)++;
}

static void
test_check_cancelled (void)
{
  Fx *fx = fx_new ("timeout=\"10\"");
  guint cancels = 0;

  fx->xb->verifier = (XauthVerifier){ silent_check, silent_cancel, &cancels };
  start (fx);
  assert_both_failed (fx, NULL, "extended authentication: no verdict on user 'alice' within 10 s");
  g_assert_cmpuint (cancels, ==, 1);
  fx_free (fx);
}

static void
test_gateway_never_starts (void)
{
  Fx *fx = fx_new (NULL);

  fx->drop_tx_from_b = TRUE;
  start (fx);
  assert_both_failed (fx, "gateway did not start extended authentication within 30 s", NULL);
  fx_free (fx);
}

static void
test_client_never_answers (void)
{
  Fx *fx = fx_new ("timeout=\"10\"");

  fx->drop_tx_from_a = TRUE;
  start (fx);
  assert_both_failed (fx, NULL, "client did not answer extended authentication within 10 s");
  fx_free (fx);
}

static void
add_extra (Xauth *xa, guint16 type, const char *value)
{
  if (xa->ask_extra == NULL)
    xa->ask_extra = modike_attr_array_new ();
  modike_attr_add_tlv (xa->ask_extra, type, (const guint8 *) value, strlen (value));
}

/* An attribute nobody claims is skipped; the rest goes on. */
static void
test_unknown_attribute (void)
{
  Fx *fx = fx_new (NULL);

  add_extra (fx->xb, 16600, "whatever");
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  fx_free (fx);
}

/* A SET without XAUTH_STATUS (a mode config push, say) before XAuth is
 * acknowledged and does not end anything. */
static void
test_set_without_status (void)
{
  Fx *fx = fx_new (NULL);

  fx->xb->push_first = modike_attr_array_new ();
  modike_attr_add_tlv (fx->xb->push_first, 1, (const guint8 *) "\x0a\x00\x00\x01", 4);
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  g_assert_true (g_str_has_prefix (fx->seq->str, "TtTtTt"));
  fx_free (fx);
}

/* XAUTH_STATUS of 3 bytes does not fit its format: the client refuses the
 * message and fails the SA naming the attribute. */
static void
test_malformed_attribute (void)
{
  Fx *fx = fx_new ("timeout=\"10\"");

  add_extra (fx->xb, XAUTH_STATUS, "abc");
  start (fx);
  assert_both_failed (fx, "XAUTH_STATUS", NULL);
  assert_error_has (fx->a->p1_error, "extended authentication failed");
  fx_free (fx);
}

/* Only generic is implemented: a REQUEST for another type is answered
 * with XAUTH_STATUS FAIL and the SA fails on both sides. */
static void
test_other_type_refused (void)
{
  Fx *fx = fx_new (NULL);

  fx->xb->ask_type = 1; /* RADIUS-CHAP */
  start (fx);
  assert_both_failed (fx, "gateway asked for XAUTH_TYPE 1; only generic (0) is implemented", NULL);
  fx_free (fx);
}

/* A client without credentials for the peer refuses and says so. */
static void
test_no_credentials (void)
{
  Fx *fx = fx_new (NULL);
  g_autoptr (GError) error = NULL;
  Params p = params_default ();

  g_assert_true (configure (fx->a, &p, TRUE, "<xauth/>", &error));
  g_assert_no_error (error);
  start (fx);
  assert_both_failed (fx,
                      "no credentials for peer 'b': give <credentials> in the xauth section or connect with modike",
                      NULL);
  fx_free (fx);
}

static void
test_config_errors (void)
{
  Fx *fx = fx_new (NULL);
  Params p = params_default ();
  g_autoptr (GError) error = NULL;
  g_autofree char *bad = write_file (fx, "bad-users", "alice:plain:secret\n");
  g_autofree char *section = g_strdup_printf ("<xauth users-file=\"%s\"/>", bad);

  g_assert_false (configure (fx->b, &p, FALSE, section, &error));
  assert_error_has (error, "bad-users:1: want name:pbkdf2-sha256:iterations:salt:hash");
  g_clear_error (&error);
  g_assert_false (configure (fx->b, &p, FALSE, "<xauth retries=\"0\"/>", &error));
  assert_error_has (error, "retries='0' not in 1..20");
  g_clear_error (&error);
  g_assert_false (configure (fx->a, &p, TRUE,
                             "<xauth><credentials peer=\"b\" user=\"alice\" password-file=\"/nonexistent/pw\"/>"
                             "</xauth>",
                             &error));
  assert_error_has (error, "password-file '/nonexistent/pw' not found");
  g_clear_error (&error);
  {
    g_autofree char *pw = write_file (fx, "pw2", "x\n");
    g_autofree char *two = g_strdup_printf ("<xauth><credentials peer=\"b\" user=\"alice\" password-file=\"%s\"/>"
                                            "<credentials peer=\"b\" user=\"bob\" password-file=\"%s\"/></xauth>",
                                            pw, pw);

    g_assert_false (configure (fx->a, &p, TRUE, two, &error));
    assert_error_has (error, "a second <credentials> for peer 'b'");
  }
  fx_free (fx);
}

/* ---- a fake host: modiked with a connect client attached to A ---- */

static void
host_reply (Fx *fx)
{
  guint n = g_strv_length ((char **) fx->host_answers);
  const char *pw = fx->host_answers[MIN (fx->host_asked - 1, n - 1)];
  ModikeHostCredentialsDone done = fx->host_done;
  g_autoptr (GHashTable) values = g_hash_table_new (g_str_hash, g_str_equal);

  fx->host_done = NULL;
  if (strcmp (pw, "-") == 0)
    {
      g_autoptr (GError) e = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "the user cancelled");

      done (NULL, e, fx->host_token);
      return;
    }
  if (*pw != '\0')
    {
      g_hash_table_insert (values, "username", "alice");
      g_hash_table_insert (values, "password", (gpointer) pw);
      g_hash_table_insert (values, "passcode", "123456");
    }
  done (values, NULL, fx->host_token);
}

static gboolean
host_later (gpointer data)
{
  Fx *fx = data;

  fx->host_timer = 0;
  host_reply (fx);
  return G_SOURCE_REMOVE;
}

static void
host_request (gpointer host, const char *peer, const char *prompt, const ModikeCredentialField *fields,
              guint n_fields, ModikeHostCredentialsDone done, gpointer token)
{
  Fx *fx = host;

  g_assert_null (fx->host_done);
  g_string_append_printf (fx->hlog, "ask %s '%s'", peer, prompt);
  for (guint i = 0; i < n_fields; i++)
    g_string_append_printf (fx->hlog, "%s%s%s", i ? "," : " ", fields[i].name, fields[i].secret ? "*" : "");
  g_string_append_c (fx->hlog, '\n');
  fx->host_asked++;
  fx->host_done = done;
  fx->host_token = token;
  if (fx->host_after_ms == 0)
    host_reply (fx);
  else
    fx->host_timer = fx->a->env.timer_add (fx->a->env.env, fx->host_after_ms, host_later, fx);
}

static void
host_stage (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error)
{
  g_string_append_printf (((Fx *) host)->hlog, "stage %s %s %s%s%s\n", peer, stage, up ? "up" : "failed",
                          error ? ": " : "", error ? error->message : "");
}

static void
host_banner (gpointer host, const char *peer, const char *text)
{
  g_string_append_printf (((Fx *) host)->hlog, "banner %s %s\n", peer, text);
}

static const ModikeHostOps fake_host_ops = {
  sizeof (ModikeHostOps), host_request, host_stage, host_banner,
};

/* A with `section` (no credentials by default) and the fake host. */
static Fx *
fx_new_host (const char *b_extra, const char *a_section, const char *const *answers, guint after_ms)
{
  Fx *fx = fx_new (b_extra);
  Params p = params_default ();
  g_autoptr (GError) error = NULL;

  g_assert_true (configure (fx->a, &p, TRUE, a_section != NULL ? a_section : "<xauth/>", &error));
  g_assert_no_error (error);
  fx->hlog = g_string_new (NULL);
  fx->host_answers = answers;
  fx->host_after_ms = after_ms;
  modike_ike_set_host (fx->a->ike, &fake_host_ops, fx);
  return fx;
}

/* No <credentials>: the host is asked for user name and password, the
 * answer comes 3 s later (a user typing); the stage is reported up once,
 * after the answer. */
static void
test_host_answer_later (void)
{
  static const char *const answers[] = { "alicepw", NULL };
  Fx *fx = fx_new_host (NULL, NULL, answers, 3000);

  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  g_assert_cmpstr (fx->hlog->str, ==,
                   "ask b 'Extended authentication for b' username,password*\n"
                   "stage b xauth up\n");
  g_assert_true (g_str_has_prefix (fx->seq->str, "TTt"));
  fx_free (fx);
}

/* <credentials> without password-file: only the password is asked for. */
static void
test_host_password_only (void)
{
  static const char *const answers[] = { "alicepw", NULL };
  Fx *fx = fx_new_host (NULL, "<xauth><credentials peer=\"b\" user=\"alice\"/></xauth>", answers, 0);

  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  g_assert_cmpstr (fx->hlog->str, ==, "ask b 'Extended authentication for b' password*\nstage b xauth up\n");
  fx_free (fx);
}

/* A wrong answer, then the right one: the gateway asks again (saying why)
 * and so is the host; one stage report, after success. */
static void
test_host_retry (void)
{
  static const char *const answers[] = { "wrong", "alicepw", NULL };
  Fx *fx = fx_new_host (NULL, NULL, answers, 500);

  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  g_assert_cmpuint (fx->host_asked, ==, 2);
  g_assert_cmpstr (fx->hlog->str, ==,
                   "ask b 'Extended authentication for b' username,password*\n"
                   "ask b 'wrong user name or password, try again' username,password*\n"
                   "stage b xauth up\n");
  fx_free (fx);
}

/* Wrong every time: the stage is reported failed once, with the cause. */
static void
test_host_wrong (void)
{
  static const char *const answers[] = { "wrong", NULL };
  Fx *fx = fx_new_host ("retries=\"2\"", NULL, answers, 0);

  start (fx);
  assert_both_failed (fx, "extended authentication failed for user 'alice'", NULL);
  g_assert_cmpuint (fx->host_asked, ==, 2);
  g_assert_true (g_str_has_suffix (fx->hlog->str, "password*\nstage b xauth failed: peer b: extended "
                                                  "authentication failed for user 'alice'\n"));
  fx_free (fx);
}

/* The user cancels, or answers with nothing: a clean failure naming it. */
static void
test_host_cancel (void)
{
  static const char *const cancel[] = { "-", NULL };
  static const char *const empty[] = { "", NULL };
  static const struct {
    const char *const *answers;
    const char *error;
  } cases[] = {
    { cancel, "no credentials for peer 'b': the user cancelled" },
    { empty, "no credentials for peer 'b': the answer lacks the user name" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Fx *fx = fx_new_host (NULL, NULL, cases[i].answers, 1000);
      g_autofree char *stage = NULL;

      start (fx);
      assert_both_failed (fx, cases[i].error, NULL);
      g_assert_cmpuint (fx->host_asked, ==, 1);
      stage = g_strdup_printf ("stage b xauth failed: peer b: extended authentication: %s\n", cases[i].error);
      g_assert_true (g_str_has_suffix (fx->hlog->str, stage));
      g_assert_null (strpbrk (fx->seq->str, "qQ"));
      fx_free (fx);
    }
}

/* The host answers after the gateway gave up and the SA died: the answer
 * only frees (ASan checks), nothing is sent, nothing asked again. */
static void
test_host_answer_after_sa_died (void)
{
  static const char *const answers[] = { "alicepw", NULL };
  Fx *fx = fx_new_host ("timeout=\"10\"", NULL, answers, 600000);
  g_autofree char *seq = NULL;

  start (fx);
  assert_both_failed (fx, NULL, "client did not answer extended authentication within 10 s");
  g_assert_nonnull (fx->host_done);
  seq = g_strdup (fx->seq->str);
  fx->a->env.timer_remove (fx->a->env.env, fx->host_timer);
  host_reply (fx);
  net_run (fx->net, 5000, NULL, NULL);
  g_assert_cmpstr (fx->seq->str, ==, seq);
  g_assert_cmpuint (fx->host_asked, ==, 1);
  assert_no_sas (fx->a);
  fx_free (fx);
}

/* The one-time-code round: the host is asked for the passcode alone. */
static void
test_host_otp (void)
{
  static const char *const answers[] = { "alicepw", NULL };
  Fx *fx = fx_new_host (NULL, NULL, answers, 0);
  Otp o = { fx };

  fx->xb->verifier = (XauthVerifier){ otp_check, NULL, &o };
  start (fx);
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  check_pair (fx->a, fx->b, 1);
  g_assert_cmpstr (fx->hlog->str, ==,
                   "ask b 'Extended authentication for b' username,password*\n"
                   "ask b 'enter your one-time code' username,passcode*\n"
                   "stage b xauth up\n");
  fx_free (fx);
}

/* ---- users file ---- */

static void
test_users_good (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *e1 = xauth_users_make_entry ("alice", (const guint8 *) "pw1", 3, 1000, &error);
  g_autofree char *e2 = xauth_users_make_entry ("bob", (const guint8 *) "pw2", 3, 1200, &error);
  g_autofree char *text = g_strdup_printf ("# users\n\n%s\n  %s  \n", e1, e2);
  g_autoptr (XauthUsers) u = xauth_users_parse (text, strlen (text), "users", &error);

  g_assert_no_error (error);
  g_assert_cmpuint (xauth_users_count (u), ==, 2);
  g_assert_true (xauth_users_check (u, "alice", (const guint8 *) "pw1", 3));
  g_assert_true (xauth_users_check (u, "bob", (const guint8 *) "pw2", 3));
  g_assert_false (xauth_users_check (u, "alice", (const guint8 *) "pw2", 3));
  g_assert_false (xauth_users_check (u, "alice", (const guint8 *) "pw", 2));
  g_assert_false (xauth_users_check (u, "carol", (const guint8 *) "pw1", 3));
  /* Salts differ: the same password gives another line. */
  {
    g_autofree char *e3 = xauth_users_make_entry ("alice", (const guint8 *) "pw1", 3, 1000, &error);

    g_assert_cmpstr (e1, !=, e3);
  }
}

static void
test_users_bad (void)
{
  static const struct {
    const char *text, *error;
  } cases[] = {
    { "alice:alicepw\n", "u:1: want name:pbkdf2-sha256:iterations:salt:hash, found 2 fields" },
    { "# c\nalice:plain:1000:AAAAAAAAAAA=:x\n", "u:2: user 'alice': unknown scheme 'plain'" },
    { "alice:pbkdf2-sha256:10:AAAAAAAAAAA=:AAAA\n", "u:1: user 'alice': iterations '10' not in 1000..10000000" },
    { "alice:pbkdf2-sha256:1000x:AAAAAAAAAAA=:AAAA\n", "iterations '1000x'" },
    { "alice:pbkdf2-sha256:1000:not*b64:AAAA\n", "u:1: user 'alice': salt is not base64 of 8..64 bytes" },
    { "alice:pbkdf2-sha256:1000:AAAAAAAAAAA=:AAAA\n", "u:1: user 'alice': hash is not base64 of 32 bytes" },
    { ":pbkdf2-sha256:1000:AAAAAAAAAAA=:AAAA\n", "u:1: bad user name" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (XauthUsers) u = xauth_users_parse (cases[i].text, strlen (cases[i].text), "u", &error);

      g_assert_null (u);
      assert_error_has (error, cases[i].error);
    }
  {
    g_autoptr (GError) error = NULL;
    g_autofree char *e = xauth_users_make_entry ("alice", (const guint8 *) "x", 1, 1000, &error);
    g_autofree char *text = g_strdup_printf ("%s\n%s\n", e, e);
    g_autoptr (XauthUsers) u = xauth_users_parse (text, strlen (text), "u", &error);

    g_assert_null (u);
    assert_error_has (error, "u:2: user 'alice' listed twice");
  }
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (XauthUsers) u = xauth_users_load ("/nonexistent/users", &error);

    g_assert_null (u);
    g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  }
}

/* modike-xauth-passwd (MODIKE_XAUTH_PASSWD): a line the parser takes,
 * that checks with the password given, without the password in it. */
static void
test_passwd_tool (void)
{
  const char *tool = g_getenv ("MODIKE_XAUTH_PASSWD");
  const char *argv[] = { tool, "alice", NULL };
  g_autoptr (GSubprocess) sp = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) in = g_bytes_new_static ("s3cret pw\n", 10);
  g_autoptr (GBytes) out = NULL;
  g_autoptr (XauthUsers) u = NULL;
  const char *text;
  gsize len;

  g_assert_nonnull (tool);
  sp = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate (sp, in, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (sp));
  text = g_bytes_get_data (out, &len);
  g_assert_true (g_str_has_prefix (text, "alice:pbkdf2-sha256:100000:"));
  g_assert_null (g_strstr_len (text, len, "s3cret"));
  u = xauth_users_parse (text, len, "tool", &error);
  g_assert_no_error (error);
  g_assert_true (xauth_users_check (u, "alice", (const guint8 *) "s3cret pw", 9));
  g_assert_false (xauth_users_check (u, "alice", (const guint8 *) "s3cret", 6));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
  g_test_add_func ("/xauth/success", test_success);
  g_test_add_func ("/xauth/retry-then-success", test_retry_then_success);
  g_test_add_func ("/xauth/loss", test_loss);
  g_test_add_func ("/xauth/answer-later", test_answer_later);
  g_test_add_func ("/xauth/answer-cancelled", test_answer_cancelled);
  g_test_add_func ("/xauth/retries-exhausted", test_retries_exhausted);
  g_test_add_func ("/xauth/otp-round", test_otp_round);
  g_test_add_func ("/xauth/check-cancelled", test_check_cancelled);
  g_test_add_func ("/xauth/gateway-never-starts", test_gateway_never_starts);
  g_test_add_func ("/xauth/client-never-answers", test_client_never_answers);
  g_test_add_func ("/xauth/unknown-attribute", test_unknown_attribute);
  g_test_add_func ("/xauth/malformed-attribute", test_malformed_attribute);
  g_test_add_func ("/xauth/set-without-status", test_set_without_status);
  g_test_add_func ("/xauth/other-type-refused", test_other_type_refused);
  g_test_add_func ("/xauth/no-credentials", test_no_credentials);
  g_test_add_func ("/xauth/config-errors", test_config_errors);
  g_test_add_func ("/xauth/host-answer-later", test_host_answer_later);
  g_test_add_func ("/xauth/host-password-only", test_host_password_only);
  g_test_add_func ("/xauth/host-retry", test_host_retry);
  g_test_add_func ("/xauth/host-wrong", test_host_wrong);
  g_test_add_func ("/xauth/host-cancel", test_host_cancel);
  g_test_add_func ("/xauth/host-answer-after-sa-died", test_host_answer_after_sa_died);
  g_test_add_func ("/xauth/host-otp", test_host_otp);
  g_test_add_func ("/xauth/users-good", test_users_good);
  g_test_add_func ("/xauth/users-bad", test_users_bad);
  g_test_add_func ("/xauth/passwd-tool", test_passwd_tool);
  return g_test_run ();
}

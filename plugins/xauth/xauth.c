/* Extended authentication over the transaction exchange: the client (the
 * end the negotiated XAUTH method authenticates further) answers, the
 * server asks and decides. Both hold phase 2 until XAUTH_STATUS OK was
 * sent and acknowledged.
 *
 *   server                                  client
 *   HDR*, HASH, ATTR(REQUEST: TYPE, USER_NAME, USER_PASSWORD)  ->
 *                          <-  HDR*, HASH, ATTR(REPLY: USER_NAME=.., USER_PASSWORD=..)
 *   (wrong: another REQUEST, up to `retries`; one-time code: REQUEST(PASSCODE))
 *   HDR*, HASH, ATTR(SET: STATUS)           ->
 *                          <-  HDR*, HASH, ATTR(ACK: STATUS)
 */
#include "xauth.h"

#include <gio/gio.h>

#include <gnutls/gnutls.h>
#include <string.h>

#define PB(t) (G_GUINT64_CONSTANT (1) << (t))
#define XA_DATA "xauth"

/* What a REQUEST asks for. */
enum {
  ASK_USER = 1 << 0,
  ASK_PASSWORD = 1 << 1,
  ASK_PASSCODE = 1 << 2,
  ASK_OTHER = 1 << 3,   /* NEXT_PIN, CHALLENGE, ANSWER: not implemented */
};

typedef enum {
  STEP_NONE,
  STEP_ASK,        /* server: send a REQUEST */
  STEP_ASK_CODE,   /* server: send a REQUEST for the one-time code */
  STEP_STATUS_OK,
  STEP_STATUS_FAIL,
  STEP_PUSH,       /* server, tests: a SET without XAUTH_STATUS first */
  STEP_FAIL,       /* fail the SA with st->fail */
} Step;

/* Per IKE SA (plugin data). */
typedef struct {
  Xauth *xa;
  gboolean client;
  gboolean started;      /* client: a REQUEST came; server: one went out */
  gboolean done;         /* STATUS OK acknowledged */
  guint deadline;        /* SA timer */
  guint step_timer;
  Step step;
  GError *fail;
  guint tries;           /* server: failed checks */
  guint rounds;          /* client: REQUESTs answered */
  char *user;            /* server: the name the client gave; client: the one we answered with */
  gboolean retry;        /* server: the next REQUEST says the last answer was wrong */
  gboolean checking;     /* server: the verifier has not answered yet */
  gboolean reported;     /* client: the "xauth" stage went to the host */
  char *prompt;          /* client: the gateway's XAUTH_MESSAGE in the last REQUEST */
  /* The message being handled, as the attribute claims saw it. */
  struct {
    guint asked;
    const char *other;   /* name of an ASK_OTHER attribute */
    gboolean has_type, has_status;
    guint32 type, status;
    char *user;
    ModikeSecret *password, *passcode;
  } cur;
} XaSa;

/* Exchange data of the exchanges the server starts. */
typedef struct {
  Step kind;
  guint16 identifier;
  ModikeExchange *x;
  Xauth *xa;
  /* a REPLY being checked */
  guint request;          /* the verifier's handle while it may still answer */
  gboolean in_check, checked;
  XauthCheck verdict;
} XaOut;

static void
xa_out_free (gpointer p)
{
  XaOut *out = p;

  if (out->request != 0 && !out->checked && out->xa->verifier.cancel != NULL)
    out->xa->verifier.cancel (out->xa->verifier.self, out->request);
  g_free (out);
}

static void
cur_clear (XaSa *st)
{
  g_clear_pointer (&st->cur.user, g_free);
  g_clear_pointer (&st->cur.password, modike_secret_free);
  g_clear_pointer (&st->cur.passcode, modike_secret_free);
  memset (&st->cur, 0, sizeof st->cur);
}

static void
xa_sa_free (gpointer p)
{
  XaSa *st = p;

  cur_clear (st);
  g_clear_error (&st->fail);
  g_free (st->user);
  g_free (st->prompt);
  g_free (st);
}

void
xauth_creds_clear (XauthCreds *c)
{
  g_clear_pointer (&c->user, g_free);
  g_clear_pointer (&c->password, modike_secret_free);
  g_clear_pointer (&c->passcode, modike_secret_free);
}

static const char *
peer_of (ModikeIkeSa *sa)
{
  const char *p = modike_ike_sa_get_peer_name (sa);

  return p != NULL ? p : "?";
}

/* ---- steps run from an SA timer: never inside the handler that decided
 * them, so the handler's own reply goes out first ---- */

static void xa_step_run (ModikeIkeSa *sa, gpointer data);

static void
step_later (ModikeIkeSa *sa, XaSa *st, Step step)
{
  st->step = step;
  if (st->step_timer == 0)
    st->step_timer = modike_ike_sa_timer_add (sa, 0, xa_step_run, st, NULL);
}

static void
fail_later (ModikeIkeSa *sa, XaSa *st, GError *error /* taken */)
{
  if (st->fail == NULL)
    st->fail = error;
  else
    g_error_free (error);
  step_later (sa, st, STEP_FAIL);
}

/* The client tells the host (modike connect) once how XAuth ended. */
static void
client_report (ModikeIkeSa *sa, XaSa *st, const GError *error)
{
  if (!st->client || st->reported)
    return;
  st->reported = TRUE;
  modike_ike_sa_report_stage (sa, "xauth", error == NULL, error);
}

static void
deadline_fired (ModikeIkeSa *sa, gpointer data)
{
  XaSa *st = data;
  g_autoptr (GError) error = NULL;

  st->deadline = 0;
  if (st->done)
    return;
  if (st->client && !st->started)
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                         "peer %s: gateway did not start extended authentication within %u s", peer_of (sa),
                         st->xa->timeout_s);
  else if (st->client)
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                         "peer %s: gateway did not finish extended authentication within %u s", peer_of (sa),
                         st->xa->timeout_s);
  else if (st->checking)
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                         "peer %s: extended authentication: no verdict on user '%s' within %u s", peer_of (sa),
                         st->user != NULL ? st->user : "?", st->xa->timeout_s);
  else
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                         "peer %s: client did not answer extended authentication within %u s", peer_of (sa),
                         st->xa->timeout_s);
  g_message ("%s", error->message);
  client_report (sa, st, error);
  modike_ike_sa_fail (sa, error);
}

static void
deadline_arm (ModikeIkeSa *sa, XaSa *st)
{
  if (st->deadline != 0)
    modike_ike_sa_timer_cancel (sa, st->deadline);
  st->deadline = modike_ike_sa_timer_add (sa, st->xa->timeout_s * 1000, deadline_fired, st, NULL);
}

/* The client's last message (ACK) and its next one (Quick Mode, mode
 * config) leave back to back; a gateway that works on one SA's messages in
 * several threads (strongSwan) may take the second first and drop the SA
 * as not yet authenticated. A short pause lets the ACK land first. */
#define CLIENT_GRACE_MS 100

static void
authenticated (ModikeIkeSa *sa, gpointer data)
{
  XaSa *st = data;

  modike_ike_sa_auth_done (sa);
  modike_ike_sa_release_phase2 (sa, st->xa->plugin);
}

static void
succeed (ModikeIkeSa *sa, XaSa *st)
{
  st->done = TRUE;
  if (st->deadline != 0)
    modike_ike_sa_timer_cancel (sa, st->deadline);
  st->deadline = 0;
  g_message ("peer %s: extended authentication succeeded for user '%s'", peer_of (sa),
             st->user != NULL ? st->user : "?");
  client_report (sa, st, NULL);
  if (!st->client && st->user != NULL)
    modike_ike_sa_set_user (sa, st->user);
  if (st->client)
    modike_ike_sa_timer_add (sa, CLIENT_GRACE_MS, authenticated, st, NULL);
  else
    authenticated (sa, st);
}

static void
xa_step_run (ModikeIkeSa *sa, gpointer data)
{
  XaSa *st = data;
  Step step = st->step;
  g_autoptr (GError) error = NULL;
  XaOut *out;

  st->step_timer = 0;
  st->step = STEP_NONE;
  if (step == STEP_FAIL)
    {
      g_message ("%s", st->fail->message);
      client_report (sa, st, st->fail);
      modike_ike_sa_fail (sa, st->fail);
      return;
    }
  if (step == STEP_NONE)
    return;
  out = g_new0 (XaOut, 1);
  out->kind = step;
  out->xa = st->xa;
  /* Each message we send gets the whole timeout for its answer. */
  st->started = TRUE;
  deadline_arm (sa, st);
  if (modike_transaction_start (sa, st->xa->plugin, out, xa_out_free, &error) == NULL)
    {
      g_prefix_error (&error, "peer %s: extended authentication: ", peer_of (sa));
      g_message ("%s", error->message);
      modike_ike_sa_fail (sa, error);
    }
}

/* ---- messages ---- */

static gboolean
send_attrs (ModikeExchange *x, guint8 type, guint16 identifier, GArray *attrs /* taken */, GError **error)
{
  return modike_transaction_send (x, type, identifier, attrs, error);
}

static void
add_secret (GArray *attrs, guint16 type, const ModikeSecret *s)
{
  modike_attr_add_tlv (attrs, type, s->data, s->len);
}

static gboolean
attr_secret (const ModikeAttrValue *v, const char *what, ModikeSecret **out, GError **error)
{
  if (v->len > XAUTH_MAX_VALUE)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "%s longer than %u bytes", what,
                   XAUTH_MAX_VALUE);
      return FALSE;
    }
  g_clear_pointer (out, modike_secret_free);
  *out = modike_secret_new_from (v->data != NULL ? v->data : (const guint8 *) "", v->len);
  return TRUE;
}

/* The attribute claims: collect what the message says into st->cur. */
static gboolean
xa_attr (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *v, gpointer user,
         GError **error)
{
  XaSa *st = modike_ike_sa_get_plugin_data (sa, XA_DATA);

  if (st == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "XAuth attribute %u on an SA without extended authentication", v->type);
      return FALSE;
    }
  switch (v->type)
    {
    case XAUTH_TYPE:
      st->cur.has_type = !v->empty;
      st->cur.type = v->number;
      break;
    case XAUTH_STATUS:
      st->cur.has_status = !v->empty;
      st->cur.status = v->number;
      break;
    case XAUTH_USER_NAME:
      st->cur.asked |= ASK_USER;
      if (!v->empty && payload->type == MODIKE_CFG_REPLY)
        {
          if (v->len > XAUTH_MAX_VALUE)
            {
              g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "user name longer than %u bytes",
                           XAUTH_MAX_VALUE);
              return FALSE;
            }
          g_free (st->cur.user);
          st->cur.user = g_strndup ((const char *) v->data, v->len);
        }
      break;
    case XAUTH_USER_PASSWORD:
      st->cur.asked |= ASK_PASSWORD;
      if (payload->type == MODIKE_CFG_REPLY && !attr_secret (v, "password", &st->cur.password, error))
        return FALSE;
      break;
    case XAUTH_PASSCODE:
      st->cur.asked |= ASK_PASSCODE;
      if (payload->type == MODIKE_CFG_REPLY && !attr_secret (v, "passcode", &st->cur.passcode, error))
        return FALSE;
      break;
    case XAUTH_MESSAGE:
      if (!v->empty)
        {
          g_autofree char *text = g_strndup ((const char *) v->data, MIN (v->len, 200));

          g_message ("peer %s says: %s", peer_of (sa), g_strcanon (text, "abcdefghijklmnopqrstuvwxyz"
                                                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                          "0123456789 .,:;!?'()-_/@",
                                                                   '?'));
          if (payload->type == MODIKE_CFG_REQUEST)
            {
              g_free (st->prompt);
              st->prompt = g_steal_pointer (&text);
            }
        }
      break;
    case XAUTH_CHALLENGE:
      st->cur.asked |= ASK_OTHER;
      st->cur.other = "CHALLENGE";
      break;
    case XAUTH_NEXT_PIN:
      st->cur.asked |= ASK_OTHER;
      st->cur.other = "NEXT_PIN";
      break;
    case XAUTH_ANSWER:
      st->cur.asked |= ASK_OTHER;
      st->cur.other = "ANSWER";
      break;
    default: /* XAUTH_DOMAIN: optional, not answered */
      break;
    }
  return TRUE;
}

static const ModikeAttrSpec xa_specs[] = {
  { XAUTH_TYPE, MODIKE_ATTR_FMT_U16, "XAUTH_TYPE" },
  { XAUTH_USER_NAME, MODIKE_ATTR_FMT_TEXT, "XAUTH_USER_NAME" },
  { XAUTH_USER_PASSWORD, MODIKE_ATTR_FMT_BYTES, "XAUTH_USER_PASSWORD" },
  { XAUTH_PASSCODE, MODIKE_ATTR_FMT_BYTES, "XAUTH_PASSCODE" },
  { XAUTH_MESSAGE, MODIKE_ATTR_FMT_BYTES, "XAUTH_MESSAGE" },
  { XAUTH_CHALLENGE, MODIKE_ATTR_FMT_BYTES, "XAUTH_CHALLENGE" },
  { XAUTH_DOMAIN, MODIKE_ATTR_FMT_BYTES, "XAUTH_DOMAIN" },
  { XAUTH_STATUS, MODIKE_ATTR_FMT_U16, "XAUTH_STATUS" },
  { XAUTH_NEXT_PIN, MODIKE_ATTR_FMT_BYTES, "XAUTH_NEXT_PIN" },
  { XAUTH_ANSWER, MODIKE_ATTR_FMT_BYTES, "XAUTH_ANSWER" },
};

/* Decodes the message's ATTR payload into st->cur. */
static const ModikeAttrPayload *
read_attrs (ModikeExchange *x, const ModikeMessage *msg, XaSa *st, GError **error)
{
  const ModikeAttrPayload *ap = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));

  cur_clear (st);
  g_clear_pointer (&st->prompt, g_free);
  if (ap == NULL || !modike_attr_payload_dispatch (modike_exchange_get_sa (x), ap, error))
    return NULL;
  return ap;
}

/* A received message the SA cannot go on from: the exchange fails and so
 * does the SA (after this handler), naming the cause. */
static ModikeVerdict
fail_both (ModikeExchange *x, XaSa *st, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  GError *e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "peer %s: extended authentication failed: %s",
                           peer_of (sa), *error != NULL ? (*error)->message : "?");

  if (st == NULL)
    {
      g_error_free (e);
      return MODIKE_V_FAIL;
    }
  fail_later (sa, st, e);
  cur_clear (st);
  return MODIKE_V_FAIL;
}

/* ---- client ---- */

/* Answers a REQUEST we cannot serve with XAUTH_STATUS FAIL in the REPLY
 * (the draft's way to refuse), then fails the SA with `why`. */
static ModikeVerdict
client_refuse (ModikeExchange *x, XaSa *st, guint16 identifier, GError *why /* taken */, GError **error)
{
  GArray *attrs = modike_attr_array_new ();

  if (st->cur.has_type)
    modike_attr_add_tv (attrs, XAUTH_TYPE, st->cur.type);
  modike_attr_add_tv (attrs, XAUTH_STATUS, XAUTH_STATUS_FAIL);
  fail_later (modike_exchange_get_sa (x), st, why);
  cur_clear (st);
  return send_attrs (x, MODIKE_CFG_REPLY, identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* A REQUEST waiting for its credentials: the exchange's data. */
typedef struct {
  ModikeExchange *x;
  Xauth *xa;
  XaSa *st;             /* valid while x is */
  guint16 identifier;
  guint asked;
  gboolean has_type;
  guint request;        /* the source's handle while it may still answer */
  gboolean in_get, answered;
  XauthCreds c;
  GError *why;
} Ask;

static void
ask_free (gpointer p)
{
  Ask *a = p;

  if (!a->answered && a->request != 0 && a->xa->source.cancel != NULL)
    a->xa->source.cancel (a->xa->source.self, a->request);
  xauth_creds_clear (&a->c);
  g_clear_error (&a->why);
  g_free (a);
}

/* Sends the REPLY (or the refusal) once the credentials are there. */
static ModikeVerdict
client_answer (Ask *a, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (a->x);
  XaSa *st = a->st;
  GArray *attrs;

  deadline_arm (sa, st);
  if (a->why != NULL)
    {
      GError *why = g_steal_pointer (&a->why);

      g_prefix_error (&why, "peer %s: extended authentication: ", peer_of (sa));
      st->cur.has_type = a->has_type;
      st->cur.type = XAUTH_TYPE_GENERIC;
      return client_refuse (a->x, st, a->identifier, why, error);
    }
  g_free (st->user);
  st->user = g_strdup (a->c.user);
  st->rounds++;
  attrs = modike_attr_array_new ();
  if (a->has_type)
    modike_attr_add_tv (attrs, XAUTH_TYPE, XAUTH_TYPE_GENERIC);
  if (a->asked & ASK_USER)
    modike_attr_add_tlv (attrs, XAUTH_USER_NAME, (const guint8 *) a->c.user, strlen (a->c.user));
  if ((a->asked & ASK_PASSWORD) && a->c.password != NULL)
    add_secret (attrs, XAUTH_USER_PASSWORD, a->c.password);
  if ((a->asked & ASK_PASSCODE) && a->c.passcode != NULL)
    add_secret (attrs, XAUTH_PASSCODE, a->c.passcode);
  g_message ("peer %s: answering extended authentication for user '%s'%s", peer_of (sa), a->c.user,
             (a->asked & ASK_PASSCODE) ? " (one-time code)" : "");
  xauth_creds_clear (&a->c);
  return send_attrs (a->x, MODIKE_CFG_REPLY, a->identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

static void
ask_done (gpointer data, XauthCreds *c, const GError *error)
{
  Ask *a = data;
  GError *e = NULL;
  ModikeVerdict v;

  g_return_if_fail (!a->answered);
  a->answered = TRUE;
  a->request = 0;
  if (c != NULL && c->user != NULL)
    {
      a->c = *c;
      memset (c, 0, sizeof *c);
    }
  else
    a->why = error != NULL ? g_error_copy (error)
                           : g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "no credentials");
  if (a->in_get)
    return;
  /* Later: the handler returned SUSPEND; finish it now. */
  v = client_answer (a, &e);
  modike_exchange_resume (a->x, v, e);
}

static ModikeVerdict
client_request (ModikeExchange *x, XaSa *st, const ModikeAttrPayload *ap, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  Ask *a;
  guint request;

  st->started = TRUE;
  deadline_arm (sa, st);
  if (st->done)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "REQUEST after XAUTH_STATUS OK");
      return fail_both (x, st, error);
    }
  if (st->cur.has_type && st->cur.type != XAUTH_TYPE_GENERIC)
    return client_refuse (x, st, ap->identifier,
                          g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                                       "peer %s: gateway asked for XAUTH_TYPE %u; only generic (0) is implemented",
                                       peer_of (sa), st->cur.type),
                          error);
  if (st->cur.asked & ASK_OTHER)
    return client_refuse (x, st, ap->identifier,
                          g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                                       "peer %s: gateway asked for XAUTH_%s, which this client cannot answer",
                                       peer_of (sa), st->cur.other),
                          error);
  if ((st->cur.asked & (ASK_USER | ASK_PASSWORD | ASK_PASSCODE)) == 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "REQUEST asks for neither user name, password nor passcode");
      return fail_both (x, st, error);
    }
  a = g_new0 (Ask, 1);
  a->x = x;
  a->xa = st->xa;
  a->st = st;
  a->identifier = ap->identifier;
  a->asked = st->cur.asked;
  a->has_type = st->cur.has_type;
  cur_clear (st);
  modike_exchange_set_data (x, a, ask_free);
  a->in_get = TRUE;
  request = st->xa->source.get (st->xa->source.self, sa, (a->asked & ASK_PASSWORD) != 0,
                                (a->asked & ASK_PASSCODE) != 0, ask_done, a);
  a->in_get = FALSE;
  if (a->answered)
    return client_answer (a, error);
  /* Someone is asked (a user typing): the gateway's wait is ours now, and
   * its retransmissions are dropped until we answer. */
  a->request = request;
  if (st->deadline != 0)
    modike_ike_sa_timer_cancel (sa, st->deadline);
  st->deadline = 0;
  return MODIKE_V_SUSPEND;
}

static ModikeVerdict
client_set (ModikeExchange *x, XaSa *st, const ModikeAttrPayload *ap, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  GArray *attrs;
  guint32 status = st->cur.status;

  if (!st->cur.has_status)
    {
      /* Not ours (a mode config push, whose attributes the claims already
       * saw): acknowledged without attributes; XAuth goes on. */
      g_message ("peer %s: SET without XAUTH_STATUS acknowledged", peer_of (sa));
      cur_clear (st);
      return send_attrs (x, MODIKE_CFG_ACK, ap->identifier, modike_attr_array_new (), error) ? MODIKE_V_OK
                                                                                             : MODIKE_V_FAIL;
    }
  cur_clear (st);
  attrs = modike_attr_array_new ();
  modike_attr_add_tv (attrs, XAUTH_STATUS, status);
  if (!send_attrs (x, MODIKE_CFG_ACK, ap->identifier, attrs, error))
    return MODIKE_V_FAIL;
  if (status == XAUTH_STATUS_OK && st->rounds > 0)
    succeed (sa, st);
  else if (status == XAUTH_STATUS_OK)
    fail_later (sa, st,
                g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                             "peer %s: gateway sent XAUTH_STATUS OK before asking anything", peer_of (sa)));
  else
    fail_later (sa, st,
                g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                             "peer %s: extended authentication failed for user '%s'", peer_of (sa),
                             st->user != NULL ? st->user : "?"));
  return MODIKE_V_OK;
}

/* Message 1 of a transaction exchange the peer started. */
static ModikeVerdict
xa_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  XaSa *st = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), XA_DATA);
  const ModikeAttrPayload *ap;

  if (st == NULL || !st->client)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "transaction exchange from a peer this end does not answer extended authentication to");
      return st != NULL ? fail_both (x, st, error) : MODIKE_V_FAIL;
    }
  ap = read_attrs (x, msg, st, error);
  if (ap == NULL)
    return fail_both (x, st, error);
  if (ap->type == MODIKE_CFG_REQUEST)
    return client_request (x, st, ap, error);
  if (ap->type == MODIKE_CFG_SET)
    return client_set (x, st, ap, error);
  g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "gateway sent ATTR type %u; want REQUEST or SET",
               ap->type);
  return fail_both (x, st, error);
}

/* ---- server ---- */

/* Appends copies of from's attributes (the tests' extras) to attrs. */
static void
add_copies (GArray *attrs, const GArray *from)
{
  for (guint i = 0; from != NULL && i < from->len; i++)
    {
      const ModikeAttr *e = &g_array_index (from, ModikeAttr, i);
      gsize n = 0;
      const guint8 *d = e->data != NULL ? g_bytes_get_data (e->data, &n) : NULL;

      if (e->tv)
        modike_attr_add_tv (attrs, e->type, e->value);
      else
        modike_attr_add_tlv (attrs, e->type, d, n);
    }
}

static ModikeVerdict
xa_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  XaOut *out = modike_exchange_get_data (x);
  XaSa *st = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), XA_DATA);
  GArray *attrs = modike_attr_array_new ();
  guint8 type;

  out->x = x;

  modike_random_nonce (&out->identifier, sizeof out->identifier);
  if (out->kind == STEP_ASK || out->kind == STEP_ASK_CODE)
    {
      static const char again[] = "wrong user name or password, try again";
      static const char code[] = "enter your one-time code";

      type = MODIKE_CFG_REQUEST;
      modike_attr_add_tv (attrs, XAUTH_TYPE, st != NULL ? st->xa->ask_type : XAUTH_TYPE_GENERIC);
      modike_attr_add_tlv (attrs, XAUTH_USER_NAME, NULL, 0);
      add_copies (attrs, st != NULL ? st->xa->ask_extra : NULL);
      if (out->kind == STEP_ASK)
        modike_attr_add_tlv (attrs, XAUTH_USER_PASSWORD, NULL, 0);
      else
        modike_attr_add_tlv (attrs, XAUTH_PASSCODE, NULL, 0);
      if (out->kind == STEP_ASK_CODE)
        modike_attr_add_tlv (attrs, XAUTH_MESSAGE, (const guint8 *) code, sizeof code - 1);
      else if (st != NULL && st->retry)
        modike_attr_add_tlv (attrs, XAUTH_MESSAGE, (const guint8 *) again, sizeof again - 1);
    }
  else if (out->kind == STEP_PUSH)
    {
      type = MODIKE_CFG_SET;
      add_copies (attrs, st != NULL ? st->xa->push_first : NULL);
    }
  else
    {
      type = MODIKE_CFG_SET;
      modike_attr_add_tv (attrs, XAUTH_STATUS, out->kind == STEP_STATUS_OK ? XAUTH_STATUS_OK : XAUTH_STATUS_FAIL);
    }
  return send_attrs (x, type, out->identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* What the verdict on a REPLY leads to: STATUS OK, the one-time code
 * round, another try, or STATUS FAIL. */
static ModikeVerdict
server_decide (ModikeExchange *x, XaOut *out)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  XaSa *st = modike_ike_sa_get_plugin_data (sa, XA_DATA);

  st->retry = FALSE;
  if (out->verdict == XAUTH_CHECK_OK)
    step_later (sa, st, STEP_STATUS_OK);
  else if (out->verdict == XAUTH_CHECK_NEED_PASSCODE && out->kind == STEP_ASK)
    step_later (sa, st, STEP_ASK_CODE);
  else
    {
      st->tries++;
      g_message ("peer %s: extended authentication: wrong credentials for user '%s' (try %u of %u)", peer_of (sa),
                 st->user != NULL ? st->user : "?", st->tries, st->xa->retries);
      st->retry = TRUE;
      step_later (sa, st, st->tries < st->xa->retries ? STEP_ASK : STEP_STATUS_FAIL);
    }
  return MODIKE_V_OK;
}

static void
check_done (gpointer data, XauthCheck verdict)
{
  XaOut *out = data;

  g_return_if_fail (!out->checked);
  out->checked = TRUE;
  out->request = 0;
  out->verdict = verdict;
  if (out->in_check)
    return;
  ((XaSa *) modike_ike_sa_get_plugin_data (modike_exchange_get_sa (out->x), XA_DATA))->checking = FALSE;
  modike_exchange_resume (out->x, server_decide (out->x, out), NULL);
}

static ModikeVerdict
server_reply (ModikeExchange *x, XaSa *st, XaOut *out, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  const XauthVerifier *v = &st->xa->verifier;
  guint request = 0;

  if (st->cur.has_status && st->cur.status == XAUTH_STATUS_FAIL)
    {
      fail_later (sa, st,
                  g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                               "peer %s: client refused extended authentication", peer_of (sa)));
      cur_clear (st);
      return MODIKE_V_OK;
    }
  out->in_check = TRUE;
  if (out->kind == STEP_ASK && st->cur.user != NULL && st->cur.password != NULL)
    {
      g_free (st->user);
      st->user = g_strdup (st->cur.user);
      request = v->check (v->self, st->user, st->cur.password, NULL, check_done, out);
    }
  else if (out->kind == STEP_ASK_CODE && st->cur.passcode != NULL
           && (st->cur.user == NULL || g_strcmp0 (st->cur.user, st->user) == 0))
    request = v->check (v->self, st->user, NULL, st->cur.passcode, check_done, out);
  else
    check_done (out, XAUTH_CHECK_FAIL);   /* an answer without what was asked for */
  out->in_check = FALSE;
  cur_clear (st);
  if (out->checked)
    return server_decide (x, out);
  out->request = request;
  st->checking = TRUE;
  return MODIKE_V_SUSPEND;
}

/* Message 2 of a transaction exchange we started: REPLY or ACK. */
static ModikeVerdict
xa_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  XaSa *st = modike_ike_sa_get_plugin_data (sa, XA_DATA);
  XaOut *out = modike_exchange_get_data (x);
  const ModikeAttrPayload *ap;
  guint8 want;

  if (st == NULL || st->client || out == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "transaction exchange not started by xauth");
      return MODIKE_V_FAIL;
    }
  ap = read_attrs (x, msg, st, error);
  if (ap == NULL)
    return fail_both (x, st, error);
  want = (out->kind == STEP_ASK || out->kind == STEP_ASK_CODE) ? MODIKE_CFG_REPLY : MODIKE_CFG_ACK;
  /* The message ID already pairs request and answer; some clients
   * (strongSwan 5.9) answer with identifier 0, so it is not checked. */
  if (ap->type != want)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "client sent ATTR type %u; want type %u",
                   ap->type, want);
      return fail_both (x, st, error);
    }
  if (ap->identifier != out->identifier)
    g_debug ("peer %s: ATTR identifier %u, ours was %u", peer_of (sa), ap->identifier, out->identifier);
  if (want == MODIKE_CFG_REPLY)
    return server_reply (x, st, out, error);
  cur_clear (st);
  if (out->kind == STEP_PUSH)
    {
      step_later (sa, st, STEP_ASK);
      return MODIKE_V_OK;
    }
  if (out->kind == STEP_STATUS_OK)
    succeed (sa, st);
  else
    fail_later (sa, st,
                g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                             "peer %s: extended authentication failed for user '%s' (%u tries)", peer_of (sa),
                             st->user != NULL ? st->user : "?", st->tries));
  return MODIKE_V_OK;
}

static const ModikeTransactionOps xa_ops = {
  .request = xa_r1,
  .initiate = xa_initiate,
  .answer = xa_i2,
};

/* ---- phase 1 is up with an XAUTH method ---- */

static void
xa_established (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
  Xauth *xa = user;
  XaSa *st = g_new0 (XaSa, 1);

  st->xa = xa;
  st->client = local;
  modike_ike_sa_set_plugin_data (sa, XA_DATA, st, xa_sa_free);
  modike_ike_sa_hold_phase2 (sa, xa->plugin);
  if (local)
    {
      g_message ("peer %s: waiting for the gateway's extended authentication", peer_of (sa));
      deadline_arm (sa, st);
    }
  else
    {
      g_message ("peer %s: starting extended authentication", peer_of (sa));
      step_later (sa, st, xa->push_first != NULL ? STEP_PUSH : STEP_ASK);
    }
}

/* ---- config ---- */

static const char xa_rng[] =
  "<element name=\"xauth\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "  <optional><attribute name=\"users-file\"/></optional>"
  "  <optional><attribute name=\"pam-service\"/></optional>"
  "  <optional><attribute name=\"retries\"/></optional>"
  "  <optional><attribute name=\"timeout\"/></optional>"
  "  <zeroOrMore><element name=\"credentials\">"
  "    <attribute name=\"peer\"/>"
  "    <attribute name=\"user\"/>"
  "    <optional><attribute name=\"password-file\"/></optional>"
  "    <optional><attribute name=\"passcode-file\"/></optional>"
  "  </element></zeroOrMore>"
  "</element>";

static void
cred_config_free (gpointer p)
{
  XauthCredConfig *c = p;

  g_free (c->peer);
  g_free (c->user);
  g_free (c->password_file);
  g_free (c->passcode_file);
  g_free (c);
}

static gboolean
number_prop (xmlNode *n, const char *name, guint min, guint max, guint def, guint *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);
  guint64 x;

  *out = def;
  if (v == NULL)
    return TRUE;
  if (!g_ascii_string_to_unsigned (v, 10, min, max, &x, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "line %u: %s='%s' not in %u..%u", n->line, name, v,
                   min, max);
      return FALSE;
    }
  *out = x;
  return TRUE;
}

/* The gateway's back end: users-file or pam-service, not both; gateway
 * options (retries) without either are a mistake, not a gateway that
 * refuses everyone. A new *pam only when the service changed, so checks
 * in flight survive a reload that keeps it. */
static gboolean
backend_apply (Xauth *xa, xmlNode *section, XauthUsers **users, char **users_path, char **service_out,
               XauthPam **pam, GError **error)
{
  const char *file = section->doc != NULL && section->doc->URL != NULL ? (const char *) section->doc->URL : "config";
  char *service = *service_out = modike_config_attr (section, "pam-service");
  g_autofree char *retries = modike_config_attr (section, "retries");

  *users_path = modike_config_attr (section, "users-file");
  if (*users_path != NULL && service != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: <xauth>: users-file and pam-service exclude each other (choose one back end)", file,
                   section->line);
      return FALSE;
    }
  if (*users_path == NULL && service == NULL && retries != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: <xauth>: a gateway needs a back end: users-file or pam-service", file, section->line);
      return FALSE;
    }
  if (service != NULL
      && (*service == '\0' || strlen (service) > 64 || strchr (service, '/') != NULL || service[0] == '.'))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: <xauth>: bad pam-service '%s' (a file name in /etc/pam.d)", file, section->line, service);
      return FALSE;
    }
  if (*users_path != NULL && (*users = xauth_users_load (*users_path, error)) == NULL)
    return FALSE;
  if (service != NULL && (xa->pam == NULL || strcmp (xauth_pam_service (xa->pam), service) != 0)
      && (*pam = xauth_pam_new (service, XAUTH_PAM_PARALLEL, error)) == NULL)
    return FALSE;
  return TRUE;
}

static gboolean
xa_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Xauth *xa = user;
  g_autoptr (XauthUsers) users = NULL;
  g_autoptr (GPtrArray) creds = g_ptr_array_new_with_free_func (cred_config_free);
  g_autofree char *users_path = NULL;
  g_autofree char *pam_service = NULL;
  g_autoptr (XauthPam) pam = NULL;
  guint retries = XAUTH_DEFAULT_RETRIES, timeout = XAUTH_DEFAULT_TIMEOUT_S;

  if (section != NULL)
    {
      if (!number_prop (section, "retries", 1, 20, XAUTH_DEFAULT_RETRIES, &retries, error)
          || !number_prop (section, "timeout", 1, 3600, XAUTH_DEFAULT_TIMEOUT_S, &timeout, error))
        return FALSE;
      if (!backend_apply (xa, section, &users, &users_path, &pam_service, &pam, error))
        return FALSE;
      for (xmlNode *c = section->children; c != NULL; c = c->next)
        {
          XauthCredConfig *cc;

          if (c->type != XML_ELEMENT_NODE || strcmp ((const char *) c->name, "credentials") != 0)
            continue;
          cc = g_new0 (XauthCredConfig, 1);
          cc->peer = modike_config_attr (c, "peer");
          for (guint i = 0; i < creds->len; i++)
            if (strcmp (((XauthCredConfig *) creds->pdata[i])->peer, cc->peer) == 0)
              {
                g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                             "line %u: a second <credentials> for peer '%s'", c->line, cc->peer);
                cred_config_free (cc);
                return FALSE;
              }
          cc->user = modike_config_attr (c, "user");
          cc->password_file = modike_config_attr (c, "password-file");
          cc->passcode_file = modike_config_attr (c, "passcode-file");
          g_ptr_array_add (creds, cc);
          if (cc->password_file != NULL && !g_file_test (cc->password_file, G_FILE_TEST_IS_REGULAR))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "line %u: password-file '%s' not found", c->line,
                           cc->password_file);
              return FALSE;
            }
          if (*cc->user == '\0' || strlen (cc->user) > XAUTH_MAX_VALUE)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "line %u: bad user name", c->line);
              return FALSE;
            }
        }
    }
  xa->retries = retries;
  xa->timeout_s = timeout;
  g_clear_pointer (&xa->users, xauth_users_free);
  xa->users = g_steal_pointer (&users);
  g_free (xa->users_path);
  xa->users_path = g_steal_pointer (&users_path);
  if (pam != NULL || pam_service == NULL)
    {
      g_clear_pointer (&xa->pam, xauth_pam_free);
      xa->pam = g_steal_pointer (&pam);
    }
  g_ptr_array_unref (xa->creds);
  xa->creds = g_steal_pointer (&creds);
  if (xa->users != NULL)
    g_message ("users file %s: %u users", xa->users_path, xauth_users_count (xa->users));
  if (xa->pam != NULL)
    g_message ("extended authentication through PAM service %s", xauth_pam_service (xa->pam));
  return TRUE;
}

/* A secret from a file: its contents up to the first line end. */
static ModikeSecret *
read_secret_file (const char *path, const char *what, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0, n;
  ModikeSecret *s = NULL;

  if (!g_file_get_contents (path, &text, &len, error))
    {
      g_prefix_error (error, "%s: ", what);
      return NULL;
    }
  n = strcspn (text, "\r\n");
  if (n == 0 || n > XAUTH_MAX_VALUE)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s file '%s' is empty or longer than %u bytes", what,
                 path, XAUTH_MAX_VALUE);
  else
    s = modike_secret_new_from (text, n);
  gnutls_memset (text, 0, len);
  return s;
}

/* What the config section has for sa's peer: the user name and the
 * secrets whose files are given (NULL fields are left for the host). */
static gboolean
config_creds (Xauth *xa, ModikeIkeSa *sa, gboolean want_password, gboolean want_passcode, XauthCreds *c,
              GError **error)
{
  const XauthCredConfig *cc = NULL;

  for (guint i = 0; xa->creds != NULL && i < xa->creds->len; i++)
    if (g_strcmp0 (((XauthCredConfig *) xa->creds->pdata[i])->peer, modike_ike_sa_get_peer_name (sa)) == 0)
      cc = xa->creds->pdata[i];
  if (cc == NULL)
    return TRUE;
  c->user = g_strdup (cc->user);
  if (want_password && cc->password_file != NULL
      && (c->password = read_secret_file (cc->password_file, "password", error)) == NULL)
    goto fail;
  if (want_passcode && cc->passcode_file != NULL
      && (c->passcode = read_secret_file (cc->passcode_file, "passcode", error)) == NULL)
    goto fail;
  return TRUE;

fail:
  xauth_creds_clear (c);
  return FALSE;
}

/* A question to the host for what the config does not have. */
typedef struct {
  Xauth *xa;
  guint id;
  char *peer;
  XauthCredsDone done;   /* NULL once cancelled or answered */
  gpointer done_data;
  XauthCreds have;       /* from the config */
  gboolean want_password, want_passcode;
  gboolean in_request;
} HostAsk;

static void
host_ask_free (gpointer p)
{
  HostAsk *h = p;

  if (h->id != 0)
    g_hash_table_remove (h->xa->asks, GUINT_TO_POINTER (h->id));
  xauth_creds_clear (&h->have);
  g_free (h->peer);
  g_free (h);
}

static ModikeSecret *
value_secret (GHashTable *values, const char *name)
{
  const char *v = g_hash_table_lookup (values, name);
  gsize n = v != NULL ? strlen (v) : 0;

  return n > 0 && n <= XAUTH_MAX_VALUE ? modike_secret_new_from (v, n) : NULL;
}

/* The host's answer (the engine wipes values after this returns). */
static void
host_answer (ModikeIkeSa *sa, GHashTable *values, const GError *error, gpointer user)
{
  HostAsk *h = user;
  XauthCreds *c = &h->have;
  g_autoptr (GError) e = NULL;
  XauthCredsDone done = h->done;

  if (done == NULL)
    return;
  h->done = NULL;
  if (error != NULL && h->in_request)
    /* At once: nobody is attached to ask (modiked without a client). */
    e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                     "no credentials for peer '%s': give <credentials> in the xauth section or connect with modike "
                     "(%s)",
                     h->peer, error->message);
  else if (error != NULL)
    e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "no credentials for peer '%s': %s", h->peer,
                     error->message);
  else if (values == NULL)
    e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "no credentials for peer '%s': an empty answer",
                     h->peer);
  else
    {
      const char *u = g_hash_table_lookup (values, "username");

      if (c->user == NULL && u != NULL && *u != '\0' && strlen (u) <= XAUTH_MAX_VALUE)
        c->user = g_strdup (u);
      if (h->want_password && c->password == NULL)
        c->password = value_secret (values, "password");
      if (h->want_passcode && c->passcode == NULL)
        c->passcode = value_secret (values, "passcode");
      if (c->user == NULL || (h->want_password && c->password == NULL) || (h->want_passcode && c->passcode == NULL))
        e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                         "no credentials for peer '%s': the answer lacks the %s", h->peer,
                         c->user == NULL ? "user name"
                         : h->want_password && c->password == NULL ? "password"
                                                                    : "one-time code");
    }
  if (e != NULL)
    done (h->done_data, NULL, e);
  else
    done (h->done_data, c, NULL);
  xauth_creds_clear (c);
}

/* The default source: the config section's <credentials> for the peer,
 * and for what it lacks (the whole entry, its password-file or
 * passcode-file) the host, which asks the attached connect client. */
static guint
creds_get (gpointer self, ModikeIkeSa *sa, gboolean want_password, gboolean want_passcode, XauthCredsDone done,
           gpointer done_data)
{
  Xauth *xa = self;
  XaSa *st = modike_ike_sa_get_plugin_data (sa, XA_DATA);
  ModikeCredentialField fields[3];
  guint n = 0, id;
  g_autoptr (GError) error = NULL;
  g_autofree char *prompt = NULL;
  HostAsk *h = g_new0 (HostAsk, 1);

  h->xa = xa;
  h->peer = g_strdup (peer_of (sa));
  h->want_password = want_password;
  h->want_passcode = want_passcode;
  if (!config_creds (xa, sa, want_password, want_passcode, &h->have, &error))
    goto fail;
  if (h->have.user == NULL)
    fields[n++] = (ModikeCredentialField){ "username", "User name", FALSE };
  if (want_password && h->have.password == NULL)
    fields[n++] = (ModikeCredentialField){ "password", "Password", TRUE };
  if (want_passcode && h->have.passcode == NULL)
    fields[n++] = (ModikeCredentialField){ "passcode", "One-time code", TRUE };
  if (n == 0)
    {
      done (done_data, &h->have, NULL);
      host_ask_free (h);
      return 0;
    }
  prompt = st != NULL && st->prompt != NULL ? g_strdup (st->prompt)
                                            : g_strdup_printf ("Extended authentication for %s", h->peer);
  h->done = done;
  h->done_data = done_data;
  id = h->id = ++xa->next_ask != 0 ? xa->next_ask : ++xa->next_ask;
  g_hash_table_insert (xa->asks, GUINT_TO_POINTER (id), h);
  h->in_request = TRUE;
  if (!modike_ike_sa_request_credentials (sa, prompt, fields, n, host_answer, h, host_ask_free, &error))
    {
      g_clear_error (&error);
      g_set_error (&error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                   "no credentials for peer '%s': give <credentials> in the xauth section or connect with modike",
                   h->peer);
      g_hash_table_remove (xa->asks, GUINT_TO_POINTER (id));
      h->id = 0;
      goto fail;
    }
  /* Answered already (and freed) or still waiting. */
  h = g_hash_table_lookup (xa->asks, GUINT_TO_POINTER (id));
  if (h == NULL || h->done == NULL)
    return 0;
  h->in_request = FALSE;
  return id;

fail:
  done (done_data, NULL, error);
  host_ask_free (h);
  return 0;
}

/* The exchange or the SA went: the host's answer, if it comes, is dropped. */
static void
creds_cancel (gpointer self, guint request)
{
  Xauth *xa = self;
  HostAsk *h = g_hash_table_lookup (xa->asks, GUINT_TO_POINTER (request));

  if (h == NULL)
    return;
  h->done = NULL;
  g_hash_table_remove (xa->asks, GUINT_TO_POINTER (request));
  h->id = 0;
}

/* The users file as a verifier: answers at once (PBKDF2 of one password,
 * about 15 ms at 100000 iterations). */
static guint
users_file_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
                  XauthCheckDone done, gpointer done_data)
{
  Xauth *xa = self;
  XauthCheck verdict = XAUTH_CHECK_FAIL;

  if (password == NULL)
    ;   /* the users file has no one-time codes */
  else if (xa->users == NULL)
    g_warning ("extended authentication: no users-file or pam-service configured, every user is refused");
  else if (xauth_users_check (xa->users, user, password->data, password->len))
    verdict = XAUTH_CHECK_OK;
  done (done_data, verdict);
  return 0;
}

/* The configured back end as the verifier: PAM (answers later, from a
 * worker thread) or the users file. */
static guint
backend_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
               XauthCheckDone done, gpointer done_data)
{
  Xauth *xa = self;

  if (xa->pam != NULL)
    return xauth_pam_check (xa->pam, user, password, passcode, done, done_data);
  return users_file_check (self, user, password, passcode, done, done_data);
}

static void
backend_cancel (gpointer self, guint request)
{
  Xauth *xa = self;

  if (xa->pam != NULL)
    xauth_pam_cancel (xa->pam, request);
}

static void
xauth_free (gpointer p)
{
  Xauth *xa = p;

  xauth_pam_free (xa->pam);
  xauth_users_free (xa->users);
  g_free (xa->users_path);
  g_ptr_array_unref (xa->creds);
  g_hash_table_unref (xa->asks);
  if (xa->ask_extra != NULL)
    g_array_unref (xa->ask_extra);
  if (xa->push_first != NULL)
    g_array_unref (xa->push_first);
  g_free (xa);
}

gboolean
xauth_init (ModikePlugin *plugin, GError **error)
{
  Xauth *xa = g_new0 (Xauth, 1);

  xa->plugin = plugin;
  xa->retries = XAUTH_DEFAULT_RETRIES;
  xa->timeout_s = XAUTH_DEFAULT_TIMEOUT_S;
  xa->creds = g_ptr_array_new_with_free_func (cred_config_free);
  xa->asks = g_hash_table_new (NULL, NULL);
  xa->source = (XauthCredSource){ creds_get, creds_cancel, xa };
  xa->verifier = (XauthVerifier){ backend_check, backend_cancel, xa };
  modike_plugin_set_data (plugin, xa, xauth_free);

  return modike_register_transaction (plugin, &xa_ops, error)
         && modike_register_attributes (plugin, xa_specs, G_N_ELEMENTS (xa_specs), xa_attr, xa, error)
         && modike_register_auth_method (plugin, MODIKE_AUTH_XAUTH_INIT_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                         MODIKE_ROLE_INITIATOR, xa_established, xa, error)
         && modike_register_auth_method (plugin, MODIKE_AUTH_XAUTH_RESP_PSK, "xauth-psk-responder",
                                         MODIKE_AUTH_PSK, MODIKE_ROLE_RESPONDER, xa_established, xa, error)
         && modike_register_auth_method (plugin, MODIKE_AUTH_XAUTH_INIT_RSA, "xauth-rsa", MODIKE_AUTH_RSA_SIG,
                                         MODIKE_ROLE_INITIATOR, xa_established, xa, error)
         && modike_register_auth_method (plugin, MODIKE_AUTH_XAUTH_RESP_RSA, "xauth-rsa-responder",
                                         MODIKE_AUTH_RSA_SIG, MODIKE_ROLE_RESPONDER, xa_established, xa, error)
         /* Hybrid: the gateway signs, the client only hashes and then
          * authenticates with XAuth (draft-ietf-ipsec-isakmp-hybrid-auth). */
         && modike_register_auth_method (plugin, MODIKE_AUTH_HYBRID_INIT_RSA, "hybrid-rsa", MODIKE_AUTH_HYBRID_RSA,
                                         MODIKE_ROLE_INITIATOR, xa_established, xa, error)
         && modike_register_auth_method (plugin, MODIKE_AUTH_HYBRID_RESP_RSA, "hybrid-rsa-responder",
                                         MODIKE_AUTH_HYBRID_RSA, MODIKE_ROLE_RESPONDER, xa_established, xa, error)
         && modike_register_config_section (plugin, "xauth", xa_rng, xa_apply, xa, error);
}

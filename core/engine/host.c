/* Host services (modike/host.h): the engine only relays between plugins
 * and the host; a pending credential request remembers its SA by cookies,
 * so an answer that comes after the SA died finds nothing and only frees. */
#include "engine-private.h"

#include <modike/host.h>
#include <string.h>

typedef struct {
  ModikeIke *ike;
  guint8 icookie[MODIKE_COOKIE_LEN];
  guint8 rcookie[MODIKE_COOKIE_LEN];
  ModikeCredentialsFunc fn;
  gpointer user;
  GDestroyNotify destroy;
} CredToken;

void
modike_ike_set_host (ModikeIke *ike, const ModikeHostOps *ops, gpointer host)
{
  ike->host_ops = ops;
  ike->host = host;
}

#define HOST_HAS(ike, member)                                                                              \
  ((ike)->host_ops != NULL && (ike)->host_ops->size >= G_STRUCT_OFFSET (ModikeHostOps, member) + sizeof (gpointer) \
   && (ike)->host_ops->member != NULL)

static void
credentials_done (GHashTable *values, const GError *error, gpointer token)
{
  CredToken *t = token;
  ModikeIkeSa *sa = modike_ike_find_sa (t->ike, t->icookie, t->rcookie);

  if (sa != NULL && !sa->dead)
    t->fn (sa, values, error, t->user);
  else
    g_debug ("credentials arrived for an SA that is gone");
  if (t->destroy)
    t->destroy (t->user);
  g_free (t);
}

gboolean
modike_ike_sa_request_credentials (ModikeIkeSa *sa, const char *prompt, const ModikeCredentialField *fields,
                                   guint n_fields, ModikeCredentialsFunc fn, gpointer user, GDestroyNotify destroy,
                                   GError **error)
{
  ModikeIke *ike = sa->ike;
  CredToken *t;

  if (!HOST_HAS (ike, request_credentials))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: no one to ask for credentials",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      return FALSE;
    }
  t = g_new0 (CredToken, 1);
  t->ike = ike;
  memcpy (t->icookie, sa->icookie, MODIKE_COOKIE_LEN);
  memcpy (t->rcookie, sa->rcookie, MODIKE_COOKIE_LEN);
  t->fn = fn;
  t->user = user;
  t->destroy = destroy;
  ike->host_ops->request_credentials (ike->host, sa->peer_name, prompt, fields, n_fields, credentials_done, t);
  return TRUE;
}

void
modike_ike_sa_report_stage (ModikeIkeSa *sa, const char *stage, gboolean up, const GError *error)
{
  if (HOST_HAS (sa->ike, stage))
    sa->ike->host_ops->stage (sa->ike->host, sa->peer_name, stage, up, error);
}

void
modike_ike_sa_report_stage_detail (ModikeIkeSa *sa, const char *stage, const char *detail)
{
  if (HOST_HAS (sa->ike, stage_detail))
    sa->ike->host_ops->stage_detail (sa->ike->host, sa->peer_name, stage, detail);
  else
    modike_ike_sa_report_stage (sa, stage, TRUE, NULL);
}

void
modike_ike_sa_report_banner (ModikeIkeSa *sa, const char *text)
{
  if (HOST_HAS (sa->ike, banner))
    sa->ike->host_ops->banner (sa->ike->host, sa->peer_name, text);
}

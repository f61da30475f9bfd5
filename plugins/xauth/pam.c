/* PAM as the gateway's verifier. pam_authenticate blocks (a conversation,
 * pam_unix's delay after a failure), so each check runs on a worker thread
 * of a small pool and its verdict comes back to the main loop that asked;
 * the engine thread never waits for PAM. */
#include "xauth.h"

#include <gnutls/gnutls.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

static guint next_id = 1;   /* main thread only */

struct _XauthPam {
  char *service;
  GThreadPool *pool;
  GHashTable *jobs;      /* id -> PamJob*: checks not delivered yet (main thread only) */
  gint stopping;         /* atomic: queued checks skip PAM, the owner is going */
  /* tests: how many checks were inside PAM at once, at most */
  GMutex lock;
  guint running, peak;
};

/* Owned by the pool's queue, then by its delivery source. */
typedef struct {
  XauthPam *owner;       /* NULL once the owner is gone */
  guint id;
  char *service;
  char *user;
  char *password;        /* g_malloc, NUL-terminated, wiped before free */
  gsize password_len;
  XauthCheckDone done;   /* NULL once cancelled */
  gpointer done_data;
  XauthCheck verdict;    /* written by the worker, read on the main loop after it finished */
  GMainContext *context; /* where the verdict goes */
  GSource *source;       /* the delivery (borrowed), set by the worker */
} PamJob;

static void
pam_job_free (gpointer p)
{
  PamJob *j = p;

  if (j->password != NULL)
    gnutls_memset (j->password, 0, j->password_len);
  g_free (j->password);
  g_free (j->user);
  g_free (j->service);
  g_main_context_unref (j->context);
  g_free (j);
}

/* PAM's questions: the password for a prompt without echo, the user name
 * for one with echo; messages are logged. Replies are malloc'd because PAM
 * takes and frees them. */
static int
conversation (int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
  PamJob *j = data;
  struct pam_response *r;

  if (n <= 0 || n > PAM_MAX_NUM_MSG)
    return PAM_CONV_ERR;
  r = calloc (n, sizeof *r);
  if (r == NULL)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++)
    {
      const char *answer = NULL;

      switch (msg[i]->msg_style)
        {
        case PAM_PROMPT_ECHO_OFF:
          answer = j->password;
          break;
        case PAM_PROMPT_ECHO_ON:
          answer = j->user;
          break;
        case PAM_ERROR_MSG:
        case PAM_TEXT_INFO:
          g_debug ("PAM service %s, user '%s': %s", j->service, j->user, msg[i]->msg);
          continue;
        default:
          break;
        }
      if (answer == NULL || (r[i].resp = strdup (answer)) == NULL)
        {
          for (int k = 0; k < i; k++)
            if (r[k].resp != NULL)
              {
                gnutls_memset (r[k].resp, 0, strlen (r[k].resp));
                free (r[k].resp);
              }
          free (r);
          return answer == NULL ? PAM_CONV_ERR : PAM_BUF_ERR;
        }
    }
  *resp = r;
  return PAM_SUCCESS;
}

static gboolean
deliver (gpointer data)
{
  PamJob *j = data;
  XauthCheckDone done = j->done;

  if (j->owner != NULL)
    g_hash_table_remove (j->owner->jobs, GUINT_TO_POINTER (j->id));
  j->done = NULL;
  if (done != NULL)
    done (j->done_data, j->verdict);
  return G_SOURCE_REMOVE;
}

static XauthCheck
run_pam (PamJob *j)
{
  struct pam_conv conv = { conversation, j };
  pam_handle_t *h = NULL;
  int rc;

  rc = pam_start (j->service, j->user, &conv, &h);
  if (rc != PAM_SUCCESS)
    {
      g_warning ("PAM service %s: pam_start: %s", j->service, pam_strerror (h, rc));
      if (h != NULL)
        pam_end (h, rc);
      return XAUTH_CHECK_FAIL;
    }
  rc = pam_authenticate (h, PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS)
    {
      /* Expired, locked or otherwise refused accounts. */
      rc = pam_acct_mgmt (h, PAM_DISALLOW_NULL_AUTHTOK);
      if (rc != PAM_SUCCESS)
        g_message ("PAM service %s: account '%s' refused: %s", j->service, j->user, pam_strerror (h, rc));
    }
  else
    g_message ("PAM service %s: user '%s' not authenticated: %s", j->service, j->user, pam_strerror (h, rc));
  pam_end (h, rc);
  return rc == PAM_SUCCESS ? XAUTH_CHECK_OK : XAUTH_CHECK_FAIL;
}

static void
worker (gpointer data, gpointer pool_data)
{
  PamJob *j = data;
  XauthPam *p = pool_data;
  GSource *s;

  if (g_atomic_int_get (&p->stopping))
    j->verdict = XAUTH_CHECK_FAIL;   /* nobody will read it */
  else
    {
      g_mutex_lock (&p->lock);
      p->running++;
      p->peak = MAX (p->peak, p->running);
      g_mutex_unlock (&p->lock);
      j->verdict = run_pam (j);
      g_mutex_lock (&p->lock);
      p->running--;
      g_mutex_unlock (&p->lock);
    }
  gnutls_memset (j->password, 0, j->password_len);
  /* Once attached the job belongs to the main loop, which may free it at
   * once: only the local pointer is used after that. */
  s = g_idle_source_new ();
  g_source_set_priority (s, G_PRIORITY_DEFAULT);
  g_source_set_callback (s, deliver, j, pam_job_free);
  j->source = s;
  g_source_attach (s, j->context);
  g_source_unref (s);
}

XauthPam *
xauth_pam_new (const char *service, guint max_parallel, GError **error)
{
  XauthPam *p = g_new0 (XauthPam, 1);

  p->service = g_strdup (service);
  p->jobs = g_hash_table_new (NULL, NULL);
  g_mutex_init (&p->lock);
  p->pool = g_thread_pool_new (worker, p, MAX (max_parallel, 1), FALSE, error);
  if (p->pool == NULL)
    {
      xauth_pam_free (p);
      return NULL;
    }
  return p;
}

void
xauth_pam_free (XauthPam *p)
{
  GHashTableIter it;
  gpointer v;

  if (p == NULL)
    return;
  /* Nobody wants these verdicts any more: queued checks skip PAM, wait
   * for those inside it, then drop the deliveries the workers attached. */
  g_hash_table_iter_init (&it, p->jobs);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      ((PamJob *) v)->done = NULL;
      ((PamJob *) v)->owner = NULL;
    }
  g_atomic_int_set (&p->stopping, 1);
  if (p->pool != NULL)
    g_thread_pool_free (p->pool, FALSE, TRUE);
  g_hash_table_iter_init (&it, p->jobs);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (((PamJob *) v)->source != NULL)
      g_source_destroy (((PamJob *) v)->source);
  g_hash_table_unref (p->jobs);
  g_mutex_clear (&p->lock);
  g_free (p->service);
  g_free (p);
}

const char *
xauth_pam_service (const XauthPam *p)
{
  return p->service;
}

guint
xauth_pam_peak (XauthPam *p)
{
  guint n;

  g_mutex_lock (&p->lock);
  n = p->peak;
  g_mutex_unlock (&p->lock);
  return n;
}

guint
xauth_pam_pending (const XauthPam *p)
{
  return g_hash_table_size (p->jobs);
}

guint
xauth_pam_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
                 XauthCheckDone done, gpointer done_data)
{
  XauthPam *p = self;
  PamJob *j;

  /* PAM has no second round here, and takes C strings: a password with a
   * NUL byte in it cannot be what the user set. */
  if (password == NULL || memchr (password->data, '\0', password->len) != NULL)
    {
      done (done_data, XAUTH_CHECK_FAIL);
      return 0;
    }
  j = g_new0 (PamJob, 1);
  j->owner = p;
  /* Ids unique across instances: a cancel after a reload replaced the
   * instance must not hit another check. */
  j->id = next_id++;
  if (next_id == 0)
    next_id = 1;
  j->service = g_strdup (p->service);
  j->user = g_strdup (user);
  j->password_len = password->len + 1;
  j->password = g_malloc (j->password_len);
  memcpy (j->password, password->data, password->len);
  j->password[password->len] = '\0';
  j->done = done;
  j->done_data = done_data;
  j->context = g_main_context_ref_thread_default ();
  g_hash_table_insert (p->jobs, GUINT_TO_POINTER (j->id), j);
  g_thread_pool_push (p->pool, j, NULL);
  return j->id;
}

void
xauth_pam_cancel (gpointer self, guint request)
{
  XauthPam *p = self;
  PamJob *j = g_hash_table_lookup (p->jobs, GUINT_TO_POINTER (request));

  /* The worker still finishes (PAM cannot be interrupted); its verdict
   * then goes nowhere. */
  if (j != NULL)
    j->done = NULL;
}

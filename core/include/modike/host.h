/* Services of the program hosting the engine (modiked), for plugins: ask
 * the user for credentials (XAuth), report the stages of a connection and
 * the gateway's banner. The host installs them with modike_ike_set_host;
 * plugins call the modike_ike_sa_* side on the main loop thread. */
#pragma once

#include <glib.h>
#include <modike/exchange.h>

G_BEGIN_DECLS

typedef struct {
  const char *name;       /* "username", "password", "passcode" */
  const char *label;      /* shown to the user; NULL = name */
  gboolean secret;        /* typed without echo */
} ModikeCredentialField;

/* The host's answer: values (name -> value, wiped after the call) or an
 * error (nobody to ask, the user cancelled or went away). */
typedef void (*ModikeHostCredentialsDone) (GHashTable *values, const GError *error, gpointer token);

typedef struct _ModikeHostOps {
  gsize size;             /* sizeof (ModikeHostOps): append-only growth */
  /* Asks whoever is attached to peer; calls done (…, token) exactly once,
   * now or later, and before modike_ike_free. */
  void (*request_credentials) (gpointer host, const char *peer, const char *prompt,
                               const ModikeCredentialField *fields, guint n_fields,
                               ModikeHostCredentialsDone done, gpointer token);
  /* A stage of peer's connection: "xauth", "modecfg", "adapter", "routes"
   * (the engine's own phase 1 and 2 go through ModikeIkeObserver). */
  void (*stage) (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error);
  /* A text from the gateway for the user (mode config banner). */
  void (*banner) (gpointer host, const char *peer, const char *text);
  /* ABI 1.3: a stage is up, with what to show next to it ("modike0
   * 10.9.0.17/32"); hosts without it get stage (.., TRUE, NULL). */
  void (*stage_detail) (gpointer host, const char *peer, const char *stage, const char *detail);
} ModikeHostOps;

/* ops NULL: no host (requests fail, reports go nowhere). ops is borrowed. */
void modike_ike_set_host (ModikeIke *ike, const ModikeHostOps *ops, gpointer host);

/* A plugin asks for credentials on sa's behalf. fn runs once with the
 * answer if sa still lives then (values wiped after fn returns); destroy
 * (user) runs in every case, after fn. FALSE (MODIKE_IKE_ERROR_FAILED) when
 * the host cannot ask anyone; then nothing runs. */
typedef void (*ModikeCredentialsFunc) (ModikeIkeSa *sa, GHashTable *values, const GError *error, gpointer user);
gboolean modike_ike_sa_request_credentials (ModikeIkeSa *sa, const char *prompt,
                                            const ModikeCredentialField *fields, guint n_fields,
                                            ModikeCredentialsFunc fn, gpointer user, GDestroyNotify destroy,
                                            GError **error);
/* Tells the host that a stage of sa's connection is up or failed. */
void modike_ike_sa_report_stage (ModikeIkeSa *sa, const char *stage, gboolean up, const GError *error);
void modike_ike_sa_report_banner (ModikeIkeSa *sa, const char *text);
/* ABI 1.3: a stage is up, with a short detail for the user (the adapter
 * and its address, the networks routed). */
void modike_ike_sa_report_stage_detail (ModikeIkeSa *sa, const char *stage, const char *detail);

G_END_DECLS

/* ABI 1.2. Phase 1 authentication methods beyond the core's pre-shared key: the
 * XAuth (draft-ietf-ipsec-isakmp-xauth) and hybrid
 * (draft-ietf-ipsec-isakmp-hybrid-auth) values a plugin claims. Phase 1
 * itself runs with the method's base (HASH_I/HASH_R and SKEYID of a
 * pre-shared key or RSA signature); the plugin adds its own authentication
 * of one side after phase 1. */
#pragma once

#include <glib.h>
#include <modike/exchange.h>
#include <modike/plugin.h>

G_BEGIN_DECLS

/* A phase 1 with the method is established. `local`: TRUE when this end is
 * the side the method authenticates in addition (the XAuth client), FALSE
 * when this end checks the peer (the XAuth server). */
typedef void (*ModikeAuthMethodFunc) (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user);

/* Claims the Authentication Method value `method` (exclusive; 1..5 are the
 * core's) under the config name `name` (<auth method="xauth-psk">): base is
 * MODIKE_AUTH_PSK, MODIKE_AUTH_RSA_SIG or MODIKE_AUTH_HYBRID_RSA (hybrid:
 * the `authenticated` end hashes, the other signs; protocol.h);
 * authenticated is the phase 1 role the plugin authenticates in addition
 * (INITIATOR for XAUTHInit* and HybridInit*, 0 = none; not 0 for hybrid). */
gboolean modike_register_auth_method (ModikePlugin *plugin, guint16 method, const char *name, guint16 base,
                                      ModikeRole authenticated, ModikeAuthMethodFunc established, gpointer user,
                                      GError **error);

/* The negotiated Authentication Method value (65001 ...), 0 before phase 1
 * chose one. */
guint16 modike_ike_sa_get_auth_method (const ModikeIkeSa *sa);
/* The name of the plugin owning the negotiated method ("core" for psk),
 * NULL before one was chosen. */
const char *modike_ike_sa_get_auth_owner (const ModikeIkeSa *sa);
/* TRUE when the negotiated method authenticates this end in addition
 * (we are the XAuth client); FALSE otherwise. */
gboolean modike_ike_sa_auth_is_local (const ModikeIkeSa *sa);

/* ABI 1.3: the method's owner says its step after phase 1 succeeded (XAuth
 * STATUS OK acknowledged): the SA is authenticated in full and
 * MODIKE_EVENT_AUTHENTICATED goes out (once; the core sends it itself
 * at phase 1 for methods without such a step). */
void modike_ike_sa_auth_done (ModikeIkeSa *sa);
gboolean modike_ike_sa_is_authenticated (const ModikeIkeSa *sa);
/* ABI 1.3: who the peer is, for leases and logs: the name the method's
 * plugin set (the XAuth user name; before auth_done, as it tells a
 * responder-only entry's clients apart), else the peer's phase 1 identity
 * as text ("client.example", "192.0.2.7", a DN); NULL before phase 1. */
void modike_ike_sa_set_user (ModikeIkeSa *sa, const char *user);
const char *modike_ike_sa_get_user (ModikeIkeSa *sa);

G_END_DECLS

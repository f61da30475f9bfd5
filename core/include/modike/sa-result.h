/* ABI 1.2. What a plugin learned for a peer (mode config): a virtual address,
 * networks to route into the tunnel, DNS servers and domains. The core
 * brings them up on the peer's virtual adapter and takes them down with
 * the IKE SA (a phase 1 rekey to the same peer keeps them). */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/exchange.h>

G_BEGIN_DECLS

typedef struct _ModikeSaResult ModikeSaResult;

ModikeSaResult *modike_sa_result_new (void);
void modike_sa_result_free (ModikeSaResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSaResult, modike_sa_result_free)
/* One address per family: a second of the same family replaces the first. */
void modike_sa_result_add_address (ModikeSaResult *r, const ModikePrefix *addr);
/* A network to route into the tunnel (split include). */
void modike_sa_result_add_route (ModikeSaResult *r, const ModikePrefix *net);
void modike_sa_result_add_dns (ModikeSaResult *r, const ModikeAddr *server);
void modike_sa_result_add_domain (ModikeSaResult *r, const char *domain);

/* Applies r (copied) to the peer's adapter: the configured <adapter> of the
 * peer, else one the core creates ("modike<N>"). A later call replaces the
 * earlier result. Needs an OS adapter and a datapath plugin. */
gboolean modike_ike_sa_set_result (ModikeIkeSa *sa, const ModikeSaResult *r, GError **error);
/* Takes the result back now (as when the SA goes without a successor). */
void modike_ike_sa_clear_result (ModikeIkeSa *sa);

G_END_DECLS

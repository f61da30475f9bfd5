/* ABI 1.2 (1.3 where marked). What a plugin learned for a peer (mode config): a virtual address,
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
/* ABI 1.3: a network that stays outside the tunnel (split exclude): a
 * BYPASS policy ahead of the peer's instances, and no route into the adapter. */
void modike_sa_result_add_exclude (ModikeSaResult *r, const ModikePrefix *net);

/* Applies r (copied) to the peer's adapter: the configured <adapter> of the
 * peer, else one the core creates ("modike<N>"). A later call replaces the
 * earlier result. Needs an OS adapter and a datapath plugin. */
gboolean modike_ike_sa_set_result (ModikeIkeSa *sa, const ModikeSaResult *r, GError **error);
/* Takes the result back now (as when the SA goes without a successor). */
void modike_ike_sa_clear_result (ModikeIkeSa *sa);

/* ABI 1.3, the gateway's side of mode config: the address the client of sa
 * uses (a host prefix, one per family; a second of a family replaces the
 * first). The peer's remote="virtual" templates get an instance for it. */
gboolean modike_ike_sa_set_peer_address (ModikeIkeSa *sa, const ModikePrefix *addr, GError **error);
/* Takes them back now (as when the client goes without a successor). */
void modike_ike_sa_clear_peer_addresses (ModikeIkeSa *sa);

G_END_DECLS

/* Address pools of a mode-config gateway: every identity (the XAuth user
 * name or the phase 1 ID, as the plugin chooses) gets a lease on one
 * address of a pool, kept in a ModecfgLeaseStore, and gets the same
 * address back on its next connection.
 *
 * acquire hands out, in this order: the identity's own lease; an address
 * never leased; the offline lease of another identity that went offline
 * longest ago (that identity gets another address next time). When every
 * address is online acquire fails with MODECFG_POOL_ERROR_EXHAUSTED naming
 * the pool and its size.
 *
 * Sessions are counted: a second acquire by an identity whose lease is
 * online (two devices of one user, a reconnect before the old SA is gone)
 * gets the same address and adds a reference; each acquire is paired with
 * one release, and the lease goes offline when the last one is released.
 *
 * A pool borrows its store; several pools share one store, told apart by
 * name. Making a pool over a store reconciles the two: offline leases
 * outside the range are dropped (see modecfg_pool_new). */
#pragma once

#include "lease-store.h"

G_BEGIN_DECLS

#define MODECFG_IDENTITY_MAX 255   /* bytes */
#define MODECFG_POOL_NAME_MAX 64   /* bytes */

/* ---- Ranges. Text errors are G_OPTION_ERROR_BAD_VALUE, as for other
 * configuration text (modike/addr.h). ---- */

/* "10.9.0.0/24", "2001:db8:f::/64": the prefix's addresses, without the
 * network and broadcast addresses of an IPv4 prefix shorter than /31 and
 * without the subnet-router anycast address (host part 0, RFC 4291
 * 2.6.1) of an IPv6 prefix shorter than /127; a bare address is a pool of
 * one. "10.9.0.10-10.9.0.200", "2001:db8:f::100-2001:db8:f::1ff":
 * inclusive, first <= last, one family. */
gboolean modecfg_range_parse (const char *text, ModecfgRange *out, GError **error);
gboolean modecfg_range_contains (const ModecfgRange *range, const ModikeAddr *addr);
/* Number of addresses; G_MAXUINT64 for a larger IPv6 range. */
guint64 modecfg_range_size (const ModecfgRange *range);
/* "10.9.0.1-10.9.0.254" */
char *modecfg_range_to_string (const ModecfgRange *range);
/* Orders by family, then address; the port is ignored. */
int modecfg_addr_compare (const ModikeAddr *a, const ModikeAddr *b);

/* ---- Pools ---- */
typedef struct _ModecfgPool ModecfgPool;

/* A pool over store (borrowed; it must outlive the pool). The store's
 * offline leases of name outside range are dropped: after a change of the
 * range the leases that still fall in it are kept. A pool removed from
 * the configuration simply gets no ModecfgPool: its leases stay in the
 * store but nothing asks for them, so they are never handed out (and come
 * back if a pool of that name returns). */
ModecfgPool *modecfg_pool_new (const char *name, const ModecfgRange *range, ModecfgLeaseStore *store,
                               GError **error);
void modecfg_pool_free (ModecfgPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModecfgPool, modecfg_pool_free)

const char *modecfg_pool_get_name (const ModecfgPool *pool);
const ModecfgRange *modecfg_pool_get_range (const ModecfgPool *pool);
int modecfg_pool_get_family (const ModecfgPool *pool);   /* AF_INET or AF_INET6 */
/* Reconfigures the range in place, with what modecfg_pool_new does to the
 * store's leases. */
gboolean modecfg_pool_set_range (ModecfgPool *pool, const ModecfgRange *range, GError **error);

/* The identity's address (port 0), see above. identity: 1 to
 * MODECFG_IDENTITY_MAX bytes, opaque. */
gboolean modecfg_pool_acquire (ModecfgPool *pool, const char *identity, ModikeAddr *out, GError **error);
/* Gives back one acquire of addr by identity; the lease stays for the
 * identity's next connection. MODECFG_POOL_ERROR_NO_LEASE when the
 * identity holds no online lease of addr. A lease that a range change
 * left outside the range is dropped once offline. */
gboolean modecfg_pool_release (ModecfgPool *pool, const char *identity, const ModikeAddr *addr, GError **error);
/* The identity's lease, online or offline: *found FALSE when none. */
gboolean modecfg_pool_find_lease (ModecfgPool *pool, const char *identity, ModecfgLease *out, gboolean *found,
                                  GError **error);

/* For status and statistics. */
typedef struct {
  guint64 size;      /* addresses in the range */
  guint64 online;    /* leases in use now */
  guint64 offline;   /* leases kept for their identity's return */
} ModecfgPoolStatus;

gboolean modecfg_pool_get_status (ModecfgPool *pool, ModecfgPoolStatus *out, GError **error);
/* ModecfgLease, lowest address first; NULL on error. */
GArray *modecfg_pool_list_leases (ModecfgPool *pool, GError **error);

G_END_DECLS

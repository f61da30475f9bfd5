/* Security policy database (RFC 4301 4.4.1): ordered entries, first match wins. */
#pragma once

#include <glib.h>
#include <modike/addr.h>

G_BEGIN_DECLS

typedef enum {
  MODIKE_SPD_PROTECT = 1,
  MODIKE_SPD_BYPASS = 2,
  MODIKE_SPD_DISCARD = 3,
} ModikeSpdAction;

typedef enum {
  MODIKE_MODE_TUNNEL = 1,
  MODIKE_MODE_TRANSPORT = 2,
} ModikeIpsecMode;

/* An address selector: an inclusive range (a prefix is a range). */
typedef struct {
  ModikeAddr from, to;
} ModikeAddrRange;

/* A port selector: inclusive range; for ICMP, `from`/`to` hold type<<8|code. */
typedef struct {
  guint16 from, to;
} ModikePortRange;

/* One ESP algorithm set offered for PROTECT (values from protocol.h). */
typedef struct {
  guint16 esp_transform;  /* ModikeEspTransform */
  guint16 key_bits;       /* 0 = algorithm default */
  guint16 auth_alg;       /* ModikeAuthAlg, NONE for AEAD */
} ModikeEspProposal;

/* ABI 1.3: which side of a policy template is a mode config address
 * (config `local="virtual"` / `remote="virtual"`); NONE for an ordinary entry. */
typedef enum {
  MODIKE_VIRTUAL_NONE = 0,
  MODIKE_VIRTUAL_LOCAL = 1,   /* client: ours, from the result (sa-result.h) */
  MODIKE_VIRTUAL_REMOTE = 2,  /* gateway: each client's (modike_ike_sa_set_peer_address) */
} ModikeVirtualSide;

typedef struct {
  guint32 id;                 /* assigned by modike_spd_add */
  char *name;                 /* policy name from the config */
  char *peer;                 /* peer (connection) name for PROTECT */
  guint priority;             /* lower first; equal keeps insertion order */
  ModikeAddrRange local, remote;
  guint8 proto;               /* next-layer protocol, 0 = any */
  ModikePortRange local_port, remote_port; /* {0,65535} = any */
  ModikeSpdAction action;
  ModikeIpsecMode mode;
  GArray *proposals;          /* ModikeEspProposal, PROTECT only */
  guint pfs_group;            /* 0 = no PFS */
  guint64 life_seconds, life_kbytes;
  /* ABI 1.3: a template never enters an SPD; the engine puts instances
   * (its own copies with that side filled in) in its place. */
  ModikeVirtualSide virtual_side;
  /* ABI 1.4: set by modike_spd_add, growing: entries of equal priority
   * are looked up in seq order (a datapath told one policy at a time
   * places it by priority, then seq). */
  guint64 seq;
} ModikeSpdEntry;

ModikeSpdEntry *modike_spd_entry_new (void);   /* any/any, BYPASS, tunnel */
ModikeSpdEntry *modike_spd_entry_dup (const ModikeSpdEntry *e);
void modike_spd_entry_free (ModikeSpdEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSpdEntry, modike_spd_entry_free)

gboolean modike_addr_range_from_prefix (const ModikePrefix *p, ModikeAddrRange *out);
gboolean modike_addr_range_contains (const ModikeAddrRange *r, const ModikeAddr *a);

/* A packet's selector values (outbound: local = source). */
typedef struct {
  ModikeAddr local, remote;
  guint8 proto;
  guint16 local_port, remote_port; /* or ICMP type<<8|code in local_port */
} ModikeSelector;

typedef struct _ModikeSpd ModikeSpd;
ModikeSpd *modike_spd_new (void);
void modike_spd_free (ModikeSpd *spd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSpd, modike_spd_free)
/* Takes ownership; returns the id. */
guint32 modike_spd_add (ModikeSpd *spd, ModikeSpdEntry *e);
gboolean modike_spd_remove (ModikeSpd *spd, guint32 id);
void modike_spd_clear (ModikeSpd *spd);
/* Borrowed; NULL if nothing matches (caller treats as DISCARD). */
const ModikeSpdEntry *modike_spd_lookup (const ModikeSpd *spd, const ModikeSelector *sel);
const ModikeSpdEntry *modike_spd_get (const ModikeSpd *spd, guint32 id);
/* Entries in lookup order (borrowed pointers). */
GPtrArray *modike_spd_entries (const ModikeSpd *spd);
/* ABI 1.4: a new array of the entries (borrowed, lookup order) whose remote
 * selector holds every address of `remote` (family 0 = any holds all);
 * costs O(log n + entries that are no host entry), not O(n). */
GPtrArray *modike_spd_covering (const ModikeSpd *spd, const ModikeAddrRange *remote);

G_END_DECLS

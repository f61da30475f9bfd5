/* Mode config (draft-dukes-ike-mode-cfg-02) over the core's transaction
 * exchange, with the Cisco Unity attributes remote-access clients expect.
 *
 *   client (pull)                              gateway
 *   HDR*, HASH, ATTR(REQUEST: ADDRESS, DNS, ...)  ->
 *                          <-  HDR*, HASH, ATTR(REPLY: ADDRESS=.., DNS=..)
 *   client (push)
 *                          <-  HDR*, HASH, ATTR(SET: ADDRESS=.., ...)
 *   HDR*, HASH, ATTR(ACK: the types taken)        ->
 *
 * Both start at MODIKE_EVENT_AUTHENTICATED (after XAuth when there is
 * XAuth). The client holds phase 2 until the configuration is applied
 * (modike_ike_sa_set_result); the gateway leases addresses from its pools
 * per modike_ike_sa_get_user and gives them to the policy instances
 * (modike_ike_sa_set_peer_address). */
#pragma once

#include "pool.h"

#include <modike/modike.h>

G_BEGIN_DECLS

/* Attribute types: the draft's (3.2) and Cisco Unity's. */
enum {
  MODECFG_IP4_ADDRESS = 1,
  MODECFG_IP4_NETMASK = 2,
  MODECFG_IP4_DNS = 3,
  MODECFG_IP4_NBNS = 4,
  MODECFG_ADDRESS_EXPIRY = 5,
  MODECFG_IP4_DHCP = 6,
  MODECFG_APPLICATION_VERSION = 7,
  MODECFG_IP6_ADDRESS = 8,
  MODECFG_IP6_NETMASK = 9,
  MODECFG_IP6_DNS = 10,
  MODECFG_IP6_NBNS = 11,
  MODECFG_IP6_DHCP = 12,
  MODECFG_IP4_SUBNET = 13,
  MODECFG_SUPPORTED_ATTRIBUTES = 14,
  MODECFG_IP6_SUBNET = 15,
  UNITY_BANNER = 28672,
  UNITY_SAVE_PASSWD = 28673,
  UNITY_DEF_DOMAIN = 28674,
  UNITY_SPLITDNS_NAME = 28675,
  UNITY_SPLIT_INCLUDE = 28676,
  UNITY_NATT_PORT = 28677,
  UNITY_LOCAL_LAN = 28678,
  UNITY_PFS = 28679,
  UNITY_FW_TYPE = 28680,
  UNITY_BACKUP_SERVERS = 28681,
  UNITY_DDNS_HOSTNAME = 28682,
};

#define MODECFG_UNITY_ENTRY_LEN 14   /* address, netmask, 6 bytes protocol and ports */
#define MODECFG_MAX_TEXT 1024        /* longest banner, domain list or version taken */
#define MODECFG_MAX_LIST 64          /* most DNS servers, networks or domains taken from one message */
#define MODECFG_DEFAULT_TIMEOUT_S 30

/* What one ATTR payload says (or, on the gateway, what a REPLY or SET
 * will say). Lists are NULL-safe: created by modecfg_attrs_init. */
typedef struct {
  GArray *asked;            /* guint16: attribute types present (with or without value) */
  gboolean has_addr4, has_mask4, has_addr6;
  ModikeAddr addr4, mask4;
  ModikePrefix addr6;       /* plen 128 when sent without a length */
  GArray *dns;              /* ModikeAddr, both families */
  GArray *nbns;             /* ModikeAddr */
  GArray *subnets;          /* ModikePrefix: INTERNAL_IP4/6_SUBNET (networks behind the gateway) */
  GArray *split_include;    /* ModikePrefix: UNITY_SPLIT_INCLUDE */
  GArray *split_exclude;    /* ModikePrefix: UNITY_LOCAL_LAN */
  GPtrArray *split_dns;     /* char*: UNITY_SPLITDNS_NAME names */
  char *domain;             /* UNITY_DEF_DOMAIN */
  char *banner;             /* UNITY_BANNER */
  char *app_version;        /* APPLICATION_VERSION */
  gboolean has_expiry, has_save_passwd, has_pfs;
  guint32 expiry, save_passwd, pfs;
  GArray *supported;        /* guint16: SUPPORTED_ATTRIBUTES */
} ModecfgAttrs;

void modecfg_attrs_init (ModecfgAttrs *a);
void modecfg_attrs_clear (ModecfgAttrs *a);
gboolean modecfg_attrs_asked (const ModecfgAttrs *a, guint16 type);

/* The attribute types the plugin claims, with their formats. */
extern const ModikeAttrSpec modecfg_specs[];
extern const gsize modecfg_n_specs;
/* "INTERNAL_IP4_ADDRESS", or NULL for a type not claimed. */
const char *modecfg_attr_name (guint16 type);

/* Takes one decoded value into a (what the attribute claims give). */
gboolean modecfg_attrs_take (ModecfgAttrs *a, const ModikeAttrValue *v, GError **error);
/* Decodes a list of ModikeAttr with the claims' formats into a; unknown
 * types are skipped, a malformed known one fails. */
gboolean modecfg_attrs_decode (const GArray *attrs, ModecfgAttrs *a, GError **error);
/* Appends a's values as TLV attributes (TV for the Unity numbers). */
void modecfg_attrs_encode (const ModecfgAttrs *a, GArray *attrs);

/* Clears the host bits: the network a prefix names. */
void modecfg_prefix_network (ModikePrefix *p);

/* Unity split lists: 14-byte entries (IPv4 address, netmask, protocol
 * and ports, sent as zero). Decoding refuses a length that is not a
 * multiple of 14 and a netmask that is not contiguous; host bits are
 * cleared (the entry names a network). */
GBytes *modecfg_unity_split_encode (const GArray *prefixes /* ModikePrefix, IPv4 */);
gboolean modecfg_unity_split_decode (const guint8 *data, gsize len, GArray *out /* ModikePrefix */, GError **error);

/* ---- Gateway configuration (<modecfg> section) ---- */
typedef struct {
  char *peer;               /* the <peer> entry it serves */
  GPtrArray *pools;         /* ModecfgPool* (borrowed from Modecfg.pools) */
  GArray *dns, *nbns;       /* ModikeAddr */
  GArray *split_include, *split_exclude;   /* ModikePrefix */
  GPtrArray *split_dns;     /* char* */
  char *domain, *banner;
  gboolean has_save_password, save_password, has_pfs;
  guint32 pfs;
  gboolean push;
  guint timeout_s;
} ModecfgGateway;

typedef struct {
  ModikePlugin *plugin;
  ModecfgLeaseStore *store;
  char *store_path;         /* NULL: memory */
  GHashTable *pools;        /* name -> ModecfgPool* */
  GPtrArray *gateways;      /* ModecfgGateway* */
  GHashTable *gateway_sas;  /* client key -> GPtrArray of its McSa*: a successor takes over leases */
  GArray *request_extra;    /* tests: ModikeAttr added to the client's REQUEST (NULL = none) */
} Modecfg;

/* ---- Per IKE SA (plugin data "modecfg"): all per-client state ---- */
typedef enum {
  MC_STEP_NONE,
  MC_STEP_REQUEST,   /* client: send the REQUEST */
  MC_STEP_SET,       /* gateway: push a SET */
  MC_STEP_FAIL,      /* fail the SA with st->fail */
} McStep;

typedef struct {
  char pool[MODECFG_POOL_NAME_MAX + 1];
  ModikeAddr addr;
} McLease;

typedef struct {
  Modecfg *mc;
  ModikeIkeSa *sa;          /* the SA this belongs to (valid while it lives) */
  gboolean client;
  gboolean push;            /* client: wait for a SET; gateway: send one */
  gboolean done;            /* client: applied; gateway: answered or acknowledged */
  gboolean reported;        /* client: the "modecfg" stage went to the host */
  guint timeout_s;
  guint deadline, step_timer;
  McStep step;
  GError *fail;
  ModecfgAttrs cur;         /* the message being handled, as the claims saw it */
  GArray *leases;           /* gateway: McLease */
  char *user;               /* gateway: the lease key */
  char *client_key;         /* gateway: its bucket in gateway_sas (peer entry and user) */
} McSa;

/* modecfg.c: shared by client and gateway. */
const char *mc_peer (ModikeIkeSa *sa);
void mc_step_later (McSa *st, McStep step);
void mc_fail_later (McSa *st, GError *error /* taken */);
void mc_deadline_arm (McSa *st);
void mc_deadline_cancel (McSa *st);

/* client.c */
void mc_client_start (McSa *st);
ModikeVerdict mc_client_message (ModikeExchange *x, McSa *st, const ModikeAttrPayload *ap, GError **error);
void mc_client_request_attrs (McSa *st, GArray *attrs);
void mc_client_report (McSa *st, const GError *error);

/* gateway.c */
void mc_gateway_start (McSa *st, const ModecfgGateway *g);
ModikeVerdict mc_gateway_request (ModikeExchange *x, McSa *st, const ModikeAttrPayload *ap, GError **error);
gboolean mc_gateway_push_attrs (McSa *st, GArray *attrs, GError **error);
void mc_gateway_acked (McSa *st);
/* The SA goes: its leases to a successor of the same client, else back to the pools. */
void mc_gateway_sa_down (McSa *st);
void mc_gateway_release (McSa *st);
/* Files a gateway SA with the other SAs of its client (peer entry and
 * user), where a phase 1 rekey's successor is found; and takes it out. */
void mc_gateway_index (McSa *st);
void mc_gateway_unindex (McSa *st);

gboolean modecfg_init (ModikePlugin *plugin, GError **error);

/* Config section (config.c). */
extern const char modecfg_rng[];
gboolean modecfg_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error);
void modecfg_gateway_free (gpointer p);
const ModecfgGateway *modecfg_find_gateway (const Modecfg *mc, const char *peer);
/* A peer option as a number of seconds (1..3600) or def. */
guint modecfg_option_seconds (ModikeIkeSa *sa, const char *key, guint def);

G_END_DECLS

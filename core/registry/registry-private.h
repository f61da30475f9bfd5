/* The registry as the core queries it (not part of the SDK). */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

ModikeRegistry *modike_registry_new (void);
void modike_registry_free (ModikeRegistry *reg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeRegistry, modike_registry_free)

/* A pseudo-plugin owning the core's own registrations ("core"). */
ModikePlugin *modike_registry_core_plugin (ModikeRegistry *reg);
/* Plugin handles (loader.c creates them); registrations are tagged with the owner. */
ModikePlugin *modike_registry_add_plugin (ModikeRegistry *reg, const ModikePluginDescriptor *desc);
/* Undoes every registration of the plugin and forgets it. */
void modike_registry_remove_plugin (ModikeRegistry *reg, ModikePlugin *plugin);
const ModikePluginDescriptor *modike_plugin_get_descriptor (const ModikePlugin *plugin);
ModikeRegistry *modike_plugin_get_registry (const ModikePlugin *plugin);
/* The first registration of this plugin the registry refused (NULL if
 * none): the loader refuses a plugin whose init ignored such an error. */
const GError *modike_plugin_get_refusal (const ModikePlugin *plugin);
/* modiked --check: plugins validate their sections without taking what a
 * running daemon holds (modike_plugin_is_check_only). */
void modike_registry_set_check_only (ModikeRegistry *reg, gboolean check_only);
/* Everything registered, one line per item, in registration order (tests
 * compare it before and after a failed load; debug logs). */
char *modike_registry_describe (const ModikeRegistry *reg);

/* Rows: the row for a received message, or the initiate row. */
const ModikeFsmRow *modike_registry_find_row (const ModikeRegistry *reg, guint8 exchange, guint from_state,
                                              guint8 msg_no, ModikeRole role);
/* Every row (for the consistency check and the table test); a new array
 * of borrowed rows: free it with g_ptr_array_unref. */
GPtrArray *modike_registry_rows (const ModikeRegistry *reg);
gboolean modike_registry_has_exchange (const ModikeRegistry *reg, guint8 exchange);
/* The plugin (or the core's pseudo-plugin) that registered the type, NULL if none. */
ModikePlugin *modike_registry_exchange_owner (const ModikeRegistry *reg, guint8 exchange);
/* Checks every row: known next states, no duplicate keys, masks sane. */
gboolean modike_registry_check_table (const ModikeRegistry *reg, GError **error);

/* Payload claims that add optional payloads at a point. */
typedef struct {
  ModikePlugin *owner;
  guint8 type;
  guint max_count;
  ModikePayloadFunc fn;
  gpointer user;
} ModikePayloadClaim;
/* Claims active at (exchange, msg_no), borrowed: never NULL (empty when
 * none), valid until the next registration or removal. */
GPtrArray *modike_registry_payloads_at (const ModikeRegistry *reg, guint8 exchange, guint8 msg_no);

typedef struct {
  ModikePlugin *owner;
  ModikeBuildFunc fn;
  gpointer user;
} ModikeBuilderReg;
/* Borrowed like payloads_at; builders run in registration order. */
GPtrArray *modike_registry_builders_at (const ModikeRegistry *reg, guint8 exchange, guint8 msg_no);

typedef struct {
  ModikePlugin *owner;
  char *name;
  GBytes *vid;
  guint flags;
  ModikeVendorIdFunc fn;
  gpointer user;
} ModikeVendorIdReg;
/* A new array of borrowed registrations: free it with g_ptr_array_unref. */
GPtrArray *modike_registry_vendor_ids (const ModikeRegistry *reg);
const ModikeVendorIdReg *modike_registry_match_vendor_id (const ModikeRegistry *reg, const guint8 *vid, gsize len);

gboolean modike_registry_notify (const ModikeRegistry *reg, guint16 type, ModikeNotifyFunc *fn, gpointer *user);
/* element name -> rng fragment (for modike_config_check_plugins); a new
 * table of borrowed strings: free it with g_hash_table_unref. */
GHashTable *modike_registry_config_fragments (const ModikeRegistry *reg);
/* Runs each registered apply with its section from cfg. */
gboolean modike_registry_apply_config (ModikeRegistry *reg, const ModikeConfig *cfg, GError **error);
/* Registered ports: a new GArray of guint32 (port | flags << 16). */
GArray *modike_registry_ports (const ModikeRegistry *reg);
const ModikeEncapOps *modike_registry_encap (const ModikeRegistry *reg, gpointer *user);
void modike_registry_emit (const ModikeRegistry *reg, ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child);
/* The engine start hooks, once per engine (its first set_config). */
void modike_registry_emit_start (const ModikeRegistry *reg, ModikeIke *ike);
const ModikeDatapathOps *modike_registry_datapath (const ModikeRegistry *reg, gpointer *user);
const ModikeOsAdapterOps *modike_registry_os_adapter (const ModikeRegistry *reg, gpointer *user);
/* Receive hooks in registration order: how many, and the i-th. */
/* Every plugin's counters now (ModikeCounter, in load order). */
GArray *modike_registry_counters (const ModikeRegistry *reg);
guint modike_registry_rx_hooks (const ModikeRegistry *reg);
ModikeRxHookFunc modike_registry_rx_hook (const ModikeRegistry *reg, guint i, gpointer *user);
/* The transmit hook, NULL when none is registered. */
ModikeTxHookFunc modike_registry_tx_hook (const ModikeRegistry *reg, gpointer *user);

/* Phase 1 authentication methods (auth-method.h). */
typedef struct {
  ModikePlugin *owner;
  guint16 method;
  char *name;
  guint16 base;                /* MODIKE_AUTH_PSK, MODIKE_AUTH_RSA_SIG or MODIKE_AUTH_HYBRID_RSA */
  ModikeRole authenticated;    /* 0 = none */
  ModikeAuthMethodFunc fn;
  gpointer user;
} ModikeAuthMethodReg;
/* By value / by config name; NULL when nobody registered it. */
const ModikeAuthMethodReg *modike_registry_auth_method (const ModikeRegistry *reg, guint16 method);
const ModikeAuthMethodReg *modike_registry_auth_method_named (const ModikeRegistry *reg, const char *name);
/* modike_config_resolve_auth with the registered methods. */
gboolean modike_registry_resolve_auth (const ModikeRegistry *reg, ModikeConfig *cfg, GError **error);

/* Configuration attribute claims (cfg-attr.h). */
typedef struct {
  ModikePlugin *owner;
  guint16 type;
  ModikeAttrFormat format;
  char *name;
  ModikeAttrFunc fn;
  gpointer user;
} ModikeAttrClaim;
const ModikeAttrClaim *modike_registry_attribute (const ModikeRegistry *reg, guint16 type);

/* Transaction exchange participants (transaction.h); NULL when plugin
 * registered none. */
const ModikeTransactionOps *modike_registry_transaction (const ModikeRegistry *reg, const ModikePlugin *plugin);

G_END_DECLS

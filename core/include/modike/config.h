/* modiked's XML configuration (libxml2, validated against a RelaxNG schema:
 * core/schema/modike.rng plus the fragments plugins register). */
#pragma once

#include <glib.h>
#include <libxml/tree.h>
#include <modike/addr.h>
#include <modike/crypto.h>
#include <modike/spd.h>

G_BEGIN_DECLS

#define MODIKE_CONFIG_ERROR (modike_config_error_quark ())
/* Defaults of <daemon><limits half-open half-open-per-address>. */
#define MODIKE_HALF_OPEN_MAX_DEFAULT 2048
#define MODIKE_HALF_OPEN_PER_ADDR_DEFAULT 32
GQuark modike_config_error_quark (void);
typedef enum {
  MODIKE_CONFIG_ERROR_IO,
  MODIKE_CONFIG_ERROR_PARSE,     /* not well-formed XML */
  MODIKE_CONFIG_ERROR_SCHEMA,    /* fails the RelaxNG schema */
  MODIKE_CONFIG_ERROR_INVALID,   /* valid XML but a bad value or reference */
} ModikeConfigError;

/* One phase 1 transform offer. */
typedef struct {
  guint16 encr;      /* ModikeEncrAlg */
  guint16 key_bits;  /* 0 = default */
  guint16 hash;      /* ModikeHashAlg (also the PRF) */
  guint16 group;     /* ModikeDhGroup */
} ModikeP1Proposal;

typedef enum {
  MODIKE_ID_AUTO = 0,   /* the IP address */
} ModikeIdAuto;

typedef struct {
  char *name;
  ModikeAddr local;        /* family 0 = any local address */
  ModikeAddr remote;       /* family 0 = any (responder only) */
  guint8 local_id_type;    /* ModikeIdType, or 0 = our address */
  char *local_id;
  guint8 remote_id_type;   /* 0 = accept any / the peer address */
  char *remote_id;
  guint16 auth;            /* ModikeAuthMethod value offered/accepted; 0 until resolved (see auth_name) */
  ModikeSecret *psk;
  guint8 exchange;         /* MODIKE_EX_MAIN or MODIKE_EX_AGGRESSIVE */
  GArray *p1_proposals;    /* ModikeP1Proposal, in preference order */
  guint64 p1_life_seconds;
  guint64 p1_life_kbytes;
  gboolean initiate;       /* start at daemon start, else wait */
  guint retransmit_ms;     /* first retransmit interval */
  guint retransmit_tries;
  guint half_open_s;       /* a phase 1 not done after this is dropped */
  GHashTable *options;     /* "plugin.key" -> value, from <option> */
  guint line;              /* for messages */
  /* <adapter name="modike0" address="203.0.113.1/32" mtu="1400" queues="2" offload="yes"/>:
   * a virtual adapter (OS adapter plugin) routing the remote selectors of
   * the peer's PROTECT policies into the datapath. */
  gboolean has_adapter;
  char *adapter_name;
  ModikePrefix adapter_addr;  /* family 0 = none yet (mode config later) */
  guint adapter_mtu;          /* default 1400 */
  guint adapter_queues;       /* default 1 */
  gboolean adapter_offload;   /* ask for GSO/GRO (MODIKE_ADAPTER_VNET_HDR); default yes */
  /* <auth method="xauth-psk">: a method a plugin registers, resolved to
   * auth/auth_base by modike_config_resolve_auth once plugins are loaded;
   * NULL for the core's psk. */
  char *auth_name;
  guint16 auth_base;          /* MODIKE_AUTH_PSK, _RSA_SIG or _HYBRID_RSA: what phase 1 computes with */
  guint auth_line;            /* of <auth>, for messages */
  /* <auth cert=".." key=".."><ca path=".."/><crl path=".."/></auth>: the
   * X.509 credentials for methods based on RSA signatures, loaded when
   * the config is; NULL when none are given. */
  ModikeX509Creds *x509;
  char *x509_sources;         /* "cert=... key=... ca=... crl=...": the files, compared on reload */
} ModikePeerConfig;

typedef struct {
  GArray *listen;          /* ModikeAddr (port 500 unless given) */
  GPtrArray *plugins;      /* char*: plugin names, in config order */
  char *plugin_dir;        /* NULL = the built-in default */
  char *log_level;         /* "error" .. "debug" */
  char *status_file;       /* SIGUSR1 dumps status here; NULL = log */
  GPtrArray *peers;        /* ModikePeerConfig* */
  GPtrArray *policies;     /* ModikeSpdEntry*: SPD entries in config order */
  xmlDoc *doc;             /* the parsed document, for plugin sections */
  char *path;
  /* <daemon><limits>: responder SAs not established yet, in total and per
   * remote address (port ignored); 0 = the default (2048, 32). */
  guint half_open_max, half_open_per_addr;
  /* ABI 1.3: <crypto threads>: worker threads for DH and signatures
   * (modike_ike_set_crypto_threads); absent = one per core, 0 = inline. */
  guint crypto_threads;
} ModikeConfig;

#define MODIKE_CRYPTO_THREADS_MAX 256

/* Reads and validates a file against the core schema; plugin sections
 * (top-level elements other than daemon/peer/policy) are checked later by
 * modike_config_check_plugins once the plugins are loaded. Errors name the
 * file, line and element. */
ModikeConfig *modike_config_load (const char *path, GError **error);
ModikeConfig *modike_config_load_string (const char *xml, const char *name_for_errors, GError **error);
void modike_config_free (ModikeConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeConfig, modike_config_free)

/* Validates plugin sections against the fragments plugins registered:
 * `fragments` maps element name -> RelaxNG fragment text (an <element>
 * pattern). An element no plugin registered is an error. */
gboolean modike_config_check_plugins (ModikeConfig *cfg, GHashTable *fragments, GError **error);
/* The top-level element of that name, or NULL. */
xmlNode *modike_config_section (const ModikeConfig *cfg, const char *name);
/* ABI 1.3: a copy of attribute `name` of a config element (a plugin's
 * section or a child of it), NULL when absent; g_free it. */
char *modike_config_attr (const xmlNode *n, const char *name);

/* Maps a registered auth method name to its value and base method. */
typedef gboolean (*ModikeAuthLookupFunc) (const char *name, guint16 *method, guint16 *base, gpointer user);
/* Resolves every peer's plugin auth method (lookup NULL: none known); an
 * unknown one fails with "file:line: <auth>: unknown auth method 'x'". */
gboolean modike_config_resolve_auth (ModikeConfig *cfg, ModikeAuthLookupFunc lookup, gpointer user, GError **error);

const ModikePeerConfig *modike_config_find_peer (const ModikeConfig *cfg, const char *name);
/* TRUE if the two peers would negotiate the same thing (reload keeps SAs). */
gboolean modike_peer_config_equal (const ModikePeerConfig *a, const ModikePeerConfig *b);
const char *modike_peer_config_option (const ModikePeerConfig *p, const char *key);

/* Where the schema lives (source tree or installed), for tools. */
const char *modike_config_schema_path (void);

G_END_DECLS

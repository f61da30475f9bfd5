/* The fsm suite's harness: two (or more) engines in one process, a manual
 * clock and timer list, and an in-memory network that can drop, duplicate,
 * hold or rewrite the Nth packet. Peer A is 192.0.2.2, peer B 192.0.2.1. */
#pragma once

#include "engine-private.h"

#include <gio/gio.h>
#include <string.h>

typedef struct _Net Net;
typedef struct _Node Node;

typedef struct {
  guint id;
  gint64 due_us;
  GSourceFunc fn;
  gpointer data;
} Timer;

typedef struct {
  Node *to;
  ModikeAddr dst, src;
  GBytes *data;
} Packet;

/* What a filter did with a packet. */
typedef enum {
  FILTER_PASS,  /* deliver normally */
  FILTER_DROP,  /* lose it */
  FILTER_TAKEN, /* the filter owns it now */
} FilterResult;
typedef FilterResult (*NetFilter) (Net *net, guint n, Packet *p, gpointer user);

struct _Node {
  Net *net;
  char *name;
  ModikeAddr addr;
  ModikeEnv env;
  ModikeRegistry *reg;
  ModikeIke *ike;
  ModikeConfig *cfg;
  guint p1_up, p2_up, deleted, p1_failed, p2_failed;
  GError *p1_error, *p2_error;
  GArray *aliases;                 /* ModikeAddr: more addresses routed to this node, or NULL */
  gboolean hold_crypto;            /* net_run leaves its crypto results queued */
};

struct _Net {
  gint64 now_us;
  GPtrArray *timers;
  guint next_timer;
  GQueue queue;
  Node *nodes[8];                  /* freed ones stay NULL */
  guint n_nodes;
  guint sent;
  GHashTable *drop, *dup;
  NetFilter filter;
  gpointer filter_user;
  GPtrArray *held; /* Packet* kept by filters */
  guint keepalives;                /* NAT keepalives sent (never delivered) */
  gint64 keepalive_us;             /* when the last one went */
  gboolean send_fails;             /* every send fails (an address gone) */
  guint crypto_threads;            /* net_set_crypto_threads */
};


typedef gboolean (*NetPred) (Net *net, gpointer user);

typedef struct {
  const char *exchange;        /* main | aggressive */
  const char *encr, *hash, *group;
  const char *psk_a, *psk_b;
  const char *pfs;             /* none | group name */
  const char *esp, *integ;     /* integ NULL for AEAD */
  const char *esp_b, *integ_b; /* B's ESP offer when it differs */
  const char *encr_b, *hash_b, *group_b;
  const char *mode;            /* tunnel | transport */
  guint p1_life, p2_life;
  guint p2_life_b;             /* B's policy lifetime when it differs */
  gboolean v6;
  guint interval, tries, half_open;
  gboolean two_policies;
  const char *peer_extra_a;     /* XML inside A's <peer> (an <adapter>) */
  const char *policies_extra_a; /* more <policy> elements for A */
} Params;

typedef struct {
  Node *a, *b;
  guint children;
} UpWant;

void packet_free (Packet *p);
gboolean net_run (Net *net, guint limit_ms, NetPred pred, gpointer user);
/* The pending timer `id` becomes due now (it runs with the next net_run). */
void net_fire_now (Net *net, guint id);
/* Crypto worker threads for every node, now and later (0 = inline, the
 * default). While jobs are in flight and no packet is, net_run waits for
 * them and runs their results before any timer (except a node's that
 * holds them: hold_crypto). */
void net_set_crypto_threads (Net *net, guint threads);
Params params_default (void);
char *config_xml (const Params *p, gboolean is_a);
Node *node_alloc (Net *net, const char *name, const char *addr);
void node_configure (Node *n, const char *xml);
Node *node_new_xml (Net *net, const char *name, const char *addr, const char *xml);
Node *node_new (Net *net, const char *name, const Params *p, gboolean is_a);
void node_free (Node *n);
Net *net_new (void);
void net_free (Net *net);
gboolean pred_up (Net *net, gpointer user);
gboolean run_until_up (Net *net, Node *a, Node *b, guint children, guint limit_ms);
ModikeIkeSa *only_sa (Node *n);
/* n's newest live IKE SA with a peer at remote's address, or NULL. */
ModikeIkeSa *newest_sa_from (Node *n, const ModikeAddr *remote);
void assert_secret_equal (const ModikeSecret *x, const ModikeSecret *y);
void assert_range_equal (const ModikeAddrRange *x, const ModikeAddrRange *y);
void check_pair (Node *a, Node *b, guint children);
Net *pair_new (const Params *p, Node **a, Node **b);
void bring_up (Net *net, Node *a, Node *b, guint children);
Net *pair_start (const Params *p, Node **a, Node **b);
Net *pair_up (const Params *p, Node **a, Node **b, guint children);
void assert_up_counts (Node *a, Node *b, guint p1, guint p2);
void assert_no_failures (Node *a, Node *b);
void establish (const Params *p, gboolean a_initiates);
void assert_no_sas (Node *n);
void reload_a (Node *a, const Params *p, const char *name);
/* The same for either node: config_xml (p, is_a) applied as a reload. */
void reload_node (Node *n, const Params *p, gboolean is_a, const char *name);
/* A plugin on a node as the loader gives it (descriptor, init, table
 * check), before the node is configured; its plugin data. */
gpointer node_load_plugin (Node *n, const ModikePluginDescriptor *desc);

/* ---- fake datapath and OS adapter plugins (fakes.c): they record the
 * engine's calls in one log ("create mk0 ...", "route+ mk0 ...") ---- */
typedef struct {
  GPtrArray *log;            /* char*, shared with the FakeOs */
  ModikeDatapathHost *host;
  guint starts, stops, sa_adds, sa_dels, policy_sets;
  guint policy_adds, policy_dels; /* one at a time (ABI 1.4) */
  GHashTable *sas;           /* fake_dp_key () -> ModikeSadEntry* (copies) */
  /* The last policies_set with the policy_add/_del since applied, in
   * (priority, seq) order: what a whole policies_set would give now. */
  GPtrArray *policies;
  gboolean refuse;           /* sa_add fails */
  gboolean calls_in_stop;    /* host calls from stop, as a racing thread would */
  gboolean old_sa_ops;       /* sa_del/sa_stats by (dir, spi) only, no sa_del_sa/sa_stats_sa */
} FakeDp;

typedef struct {
  GPtrArray *log;
  gboolean no_offload;       /* VNET_HDR asked for but not granted */
  gboolean fail_create;
  gboolean no_dns;           /* registers ops without set_dns/clear_dns */
  gboolean fail_address;     /* set_address fails */
  guint live;
} FakeOs;

void fake_log (GPtrArray *log, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
const char *fmt_prefix (const ModikePrefix *p, char *buf, gsize len);
void fake_dp_init (FakeDp *dp, GPtrArray *log);
/* The key of e's copy in FakeDp.sas: "in:%08x" (spi), "out:%08x/%u" (spi, reqid). */
char *fake_dp_key (const ModikeSadEntry *e);
void fake_dp_clear (FakeDp *dp);
void fake_dp_register (Node *n, FakeDp *dp);
/* The datapath holds exactly the SAD, keys included. */
void fake_dp_assert_mirror (FakeDp *dp, Node *n);
/* Runs the datapath host calls queued to the main context. */
void host_flush (void);
void fake_os_register (Node *n, FakeOs *os);
/* A and B from params, with the fakes given (NULL: none) registered
 * before the config is applied. */
Net *dp_pair_new (const Params *p, FakeDp *dpa, FakeDp *dpb, FakeOs *osa, Node **a, Node **b);
gboolean log_has (GPtrArray *log, const char *line);
/* Lines of the log from `from` on that start with prefix. */
guint log_count (GPtrArray *log, guint from, const char *prefix);
/* The log from `from` on equals `want` (NULL-terminated), in order. */
void assert_log (GPtrArray *log, guint from, const char *const *want);

/* Each test file adds its cases. */
void fsm_add_exchange_tests (void);
void fsm_add_fault_tests (void);
void fsm_add_lifecycle_tests (void);
void fsm_add_plugin_hook_tests (void);
void fsm_add_datapath_tests (void);
void fsm_add_padding_tests (void);
void fsm_add_plugin_result_tests (void);
void fsm_add_inflight_tests (void);
void fsm_add_plugin_exchange_tests (void);
void fsm_add_transaction_tests (void);
void fsm_add_plugin_service_tests (void);
void fsm_add_client_tests (void);
void fsm_add_cert_tests (void);

/* A file of the test PKI (tests/vectors/certs); keys made private first. */
char *cert_path (const char *name);
/* The peer's ID payload as the SA kept it, as text (a DN as GnuTLS prints it). */
char *peer_id_text (ModikeIkeSa *sa);
/* config_xml with <auth method="method"> on the test PKI (test-certs.c):
 * our certificate `leaf` ("client", "gw" ...: leaf-chain.pem and
 * leaf.key), trust anchors from `ca`, `extra` XML inside <auth>. */
char *cert_config_xml (const Params *p, gboolean is_a, const char *method, const char *leaf, const char *ca,
                       const char *extra);
void fsm_add_host_tests (void);
void fsm_add_hybrid_tests (void);
void fsm_add_instance_tests (void);
void fsm_add_halfopen_tests (void);
void fsm_add_offload_tests (void);


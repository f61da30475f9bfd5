/* Suite fsm: two engines in one process, a manual clock and timer list,
 * and an in-memory network that can drop, duplicate, hold or rewrite the
 * Nth packet. Peer A is 192.0.2.2, peer B 192.0.2.1. */
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
};

struct _Net {
  gint64 now_us;
  GPtrArray *timers;
  guint next_timer;
  GQueue queue;
  Node *nodes[4];
  guint n_nodes;
  guint sent;
  GHashTable *drop, *dup;
  NetFilter filter;
  gpointer filter_user;
  GPtrArray *held; /* Packet* kept by filters */
};

/* ---- the mock environment ---- */

static gint64
env_now (gpointer env)
{
  return ((Node *) env)->net->now_us;
}

static guint
env_timer_add (gpointer env, guint ms, GSourceFunc fn, gpointer data)
{
  Net *net = ((Node *) env)->net;
  Timer *t = g_new0 (Timer, 1);

  t->id = ++net->next_timer;
  t->due_us = net->now_us + (gint64) ms * 1000;
  t->fn = fn;
  t->data = data;
  g_ptr_array_add (net->timers, t);
  return t->id;
}

static void
env_timer_remove (gpointer env, guint id)
{
  Net *net = ((Node *) env)->net;

  for (guint i = 0; i < net->timers->len; i++)
    {
      Timer *t = g_ptr_array_index (net->timers, i);

      if (t->id == id)
        {
          g_free (g_ptr_array_steal_index (net->timers, i));
          return;
        }
    }
  /* The engine must never remove a timer that fired or never existed. */
  g_assert_not_reached ();
}

static void
packet_free (Packet *p)
{
  g_bytes_unref (p->data);
  g_free (p);
}

static Node *
route (Net *net, const ModikeAddr *dst)
{
  for (guint i = 0; i < net->n_nodes; i++)
    if (net->nodes[i] != NULL && modike_addr_equal_ip (&net->nodes[i]->addr, dst))
      return net->nodes[i];
  return NULL;
}

static gboolean
env_send (gpointer env, const ModikeAddr *local, const ModikeAddr *remote, const guint8 *data, gsize len)
{
  Node *from = env;
  Net *net = from->net;
  guint n = ++net->sent;
  Packet *p = g_new0 (Packet, 1);

  g_assert_cmpint (local->family, ==, remote->family);
  p->to = route (net, remote);
  p->dst = *remote;
  p->src = *local;
  if (local->port == 4500)
    {
      /* Floated: the non-ESP marker goes, as the daemon's 4500 socket does. */
      g_assert_cmpuint (len, >, 4);
      g_assert_true (memcmp (data, "\0\0\0\0", 4) == 0);
      data += 4;
      len -= 4;
    }
  p->data = g_bytes_new (data, len);
  if (p->to == NULL || g_hash_table_contains (net->drop, GUINT_TO_POINTER (n)))
    {
      packet_free (p);
      return TRUE;
    }
  if (net->filter != NULL)
    switch (net->filter (net, n, p, net->filter_user))
      {
      case FILTER_DROP:
        packet_free (p);
        return TRUE;
      case FILTER_TAKEN:
        return TRUE;
      case FILTER_PASS:
        break;
      }
  g_queue_push_tail (&net->queue, p);
  if (g_hash_table_contains (net->dup, GUINT_TO_POINTER (n)))
    {
      Packet *d = g_new0 (Packet, 1);

      *d = *p;
      d->data = g_bytes_ref (p->data);
      g_queue_push_tail (&net->queue, d);
    }
  return TRUE;
}

static void
deliver (Packet *p)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (p->data, &len);

  if (p->to != NULL && p->to->ike != NULL)
    modike_ike_receive (p->to->ike, &p->dst, &p->src, data, len);
  packet_free (p);
}

typedef gboolean (*NetPred) (Net *net, gpointer user);

/* Delivers packets and fires timers (advancing the clock) until pred holds
 * or nothing is left within limit_ms. */
static gboolean
net_run (Net *net, guint limit_ms, NetPred pred, gpointer user)
{
  gint64 end = net->now_us + (gint64) limit_ms * 1000;

  for (;;)
    {
      if (pred != NULL && pred (net, user))
        return TRUE;
      if (!g_queue_is_empty (&net->queue))
        {
          deliver (g_queue_pop_head (&net->queue));
          continue;
        }
      {
        Timer *next = NULL;
        guint at = 0;

        for (guint i = 0; i < net->timers->len; i++)
          {
            Timer *t = g_ptr_array_index (net->timers, i);

            if (next == NULL || t->due_us < next->due_us || (t->due_us == next->due_us && t->id < next->id))
              {
                next = t;
                at = i;
              }
          }
        if (next == NULL || next->due_us > end)
          break;
        g_ptr_array_steal_index (net->timers, at);
        if (next->due_us > net->now_us)
          net->now_us = next->due_us;
        g_assert_false (next->fn (next->data));
        g_free (next);
      }
    }
  if (pred == NULL)
    {
      net->now_us = MAX (net->now_us, end);
      return TRUE;
    }
  return pred (net, user);
}

/* ---- nodes and configs ---- */

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

static Params
params_default (void)
{
  return (Params){
    .exchange = "main", .encr = "aes128", .hash = "sha256", .group = "modp2048",
    .psk_a = "testpsk", .psk_b = "testpsk", .pfs = "none",
    .esp = "aes128", .integ = "sha256", .mode = "tunnel",
    .p1_life = 28800, .p2_life = 3600, .interval = 1000, .tries = 3, .half_open = 60,
  };
}

static char *
config_xml (const Params *p, gboolean is_a)
{
  const char *me = p->v6 ? (is_a ? "2001:db8::2" : "2001:db8::1") : (is_a ? "192.0.2.2" : "192.0.2.1");
  const char *him = p->v6 ? (is_a ? "2001:db8::1" : "2001:db8::2") : (is_a ? "192.0.2.1" : "192.0.2.2");
  const char *net_a = p->v6 ? "2001:db8:a::/64" : "10.1.0.0/24";
  const char *net_b = p->v6 ? "2001:db8:b::/64" : "10.2.0.0/24";
  const char *net_a2 = p->v6 ? "2001:db8:a2::/64" : "10.11.0.0/24";
  const char *net_b2 = p->v6 ? "2001:db8:b2::/64" : "10.12.0.0/24";
  gboolean transport = g_strcmp0 (p->mode, "transport") == 0;
  const char *esp = !is_a && p->esp_b != NULL ? p->esp_b : p->esp;
  const char *integ = !is_a && p->esp_b != NULL ? p->integ_b : p->integ;
  g_autofree char *integ_attr = integ != NULL ? g_strdup_printf (" integrity=\"%s\"", integ) : g_strdup ("");
  g_autofree char *local_sel = transport ? g_strdup (me) : g_strdup (is_a ? net_a : net_b);
  g_autofree char *remote_sel = transport ? g_strdup (him) : g_strdup (is_a ? net_b : net_a);
  g_autofree char *second = NULL;

  if (p->two_policies)
    second = g_strdup_printf (
      "  <policy name=\"net2\" peer=\"%s\" action=\"protect\" mode=\"tunnel\" local=\"%s\" remote=\"%s\""
      " pfs=\"%s\" lifetime=\"%u\">\n"
      "    <proposal encryption=\"aes256gcm16\"/>\n"
      "  </policy>\n",
      is_a ? "b" : "a", is_a ? net_a2 : net_b2, is_a ? net_b2 : net_a2, p->pfs, p->p2_life);
  return g_strdup_printf (
    "<?xml version=\"1.0\"?>\n"
    "<modike>\n"
    "  <peer name=\"%s\" initiate=\"no\">\n"
    "    <local address=\"%s\"/>\n"
    "    <remote address=\"%s\"/>\n"
    "    <auth method=\"psk\" secret=\"%s\"/>\n"
    "    <phase1 exchange=\"%s\" lifetime=\"%u\">\n"
    "      <proposal encryption=\"%s\" hash=\"%s\" group=\"%s\"/>\n"
    "    </phase1>\n"
    "    <retransmit interval=\"%u\" tries=\"%u\" half-open=\"%u\"/>\n"
    "%s"
    "  </peer>\n"
    "  <policy name=\"net\" peer=\"%s\" action=\"protect\" mode=\"%s\" local=\"%s\" remote=\"%s\""
    " pfs=\"%s\" lifetime=\"%u\">\n"
    "    <proposal encryption=\"%s\"%s/>\n"
    "  </policy>\n"
    "%s"
    "%s"
    "</modike>\n",
    is_a ? "b" : "a", me, him, is_a ? p->psk_a : p->psk_b, p->exchange, p->p1_life,
    !is_a && p->encr_b != NULL ? p->encr_b : p->encr, !is_a && p->hash_b != NULL ? p->hash_b : p->hash,
    !is_a && p->group_b != NULL ? p->group_b : p->group, p->interval, p->tries, p->half_open,
    is_a && p->peer_extra_a != NULL ? p->peer_extra_a : "", is_a ? "b" : "a",
    p->mode, local_sel, remote_sel, p->pfs, !is_a && p->p2_life_b != 0 ? p->p2_life_b : p->p2_life, esp, integ_attr,
    second != NULL ? second : "", is_a && p->policies_extra_a != NULL ? p->policies_extra_a : "");
}

static void
obs_p1_up (ModikeIkeSa *sa, gpointer user)
{
  ((Node *) user)->p1_up++;
}

static void
obs_p1_failed (const char *peer, const GError *error, gpointer user)
{
  Node *n = user;

  n->p1_failed++;
  g_clear_error (&n->p1_error);
  n->p1_error = g_error_copy (error);
}

static void
obs_p2_up (ModikeIkeSa *sa, const ModikeSadEntry *in, const ModikeSadEntry *out, gpointer user)
{
  g_assert_nonnull (in);
  g_assert_nonnull (out);
  g_assert_cmpuint (in->reqid, ==, out->reqid);
  ((Node *) user)->p2_up++;
}

static void
obs_p2_failed (const char *peer, const GError *error, gpointer user)
{
  Node *n = user;

  n->p2_failed++;
  g_clear_error (&n->p2_error);
  n->p2_error = g_error_copy (error);
}

static void
obs_deleted (ModikeIkeSa *sa, gpointer user)
{
  ((Node *) user)->deleted++;
}

static const ModikeIkeObserver observer = {
  obs_p1_up, obs_p1_failed, obs_p2_up, obs_p2_failed, obs_deleted,
};

/* A node without a config: tests register fake plugins before
 * node_configure. */
static Node *
node_alloc (Net *net, const char *name, const char *addr)
{
  Node *n = g_new0 (Node, 1);
  g_autoptr (GError) error = NULL;

  n->net = net;
  n->name = g_strdup (name);
  g_assert_true (modike_addr_parse (addr, 500, &n->addr, &error));
  n->env = (ModikeEnv){ n, env_now, env_timer_add, env_timer_remove, env_send };
  n->reg = modike_registry_new ();
  g_assert_true (modike_ike_register_core (n->reg, &error));
  g_assert_no_error (error);
  n->ike = modike_ike_new (&n->env, n->reg);
  modike_ike_set_observer (n->ike, &observer, n);
  net->nodes[net->n_nodes++] = n;
  return n;
}

static void
node_configure (Node *n, const char *xml)
{
  g_autoptr (GError) error = NULL;

  n->cfg = modike_config_load_string (xml, n->name, &error);
  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (n->ike, n->cfg, &error));
  g_assert_no_error (error);
}

static Node *
node_new_xml (Net *net, const char *name, const char *addr, const char *xml)
{
  Node *n = node_alloc (net, name, addr);

  node_configure (n, xml);
  return n;
}

static Node *
node_new (Net *net, const char *name, const Params *p, gboolean is_a)
{
  g_autofree char *xml = config_xml (p, is_a);
  const char *addr = p->v6 ? (is_a ? "2001:db8::2" : "2001:db8::1") : (is_a ? "192.0.2.2" : "192.0.2.1");

  return node_new_xml (net, name, addr, xml);
}

static void
node_free (Node *n)
{
  Net *net = n->net;

  for (guint i = 0; i < net->n_nodes; i++)
    if (net->nodes[i] == n)
      net->nodes[i] = NULL;
  modike_ike_free (n->ike);
  n->ike = NULL;
  modike_config_free (n->cfg);
  modike_registry_free (n->reg);
  g_clear_error (&n->p1_error);
  g_clear_error (&n->p2_error);
  g_free (n->name);
  g_free (n);
}

static Net *
net_new (void)
{
  Net *net = g_new0 (Net, 1);

  net->now_us = G_GINT64_CONSTANT (1000000000);
  net->timers = g_ptr_array_new_with_free_func (g_free);
  net->drop = g_hash_table_new (NULL, NULL);
  net->dup = g_hash_table_new (NULL, NULL);
  net->held = g_ptr_array_new ();
  g_queue_init (&net->queue);
  return net;
}

static void
net_free (Net *net)
{
  for (guint i = 0; i < net->n_nodes; i++)
    if (net->nodes[i] != NULL)
      node_free (net->nodes[i]);
  /* Every engine timer went with its engine. */
  g_assert_cmpuint (net->timers->len, ==, 0);
  g_queue_clear_full (&net->queue, (GDestroyNotify) packet_free);
  g_ptr_array_set_free_func (net->held, (GDestroyNotify) packet_free);
  g_ptr_array_unref (net->held);
  g_ptr_array_unref (net->timers);
  g_hash_table_destroy (net->drop);
  g_hash_table_destroy (net->dup);
  g_free (net);
}

/* ---- predicates and checks ---- */

typedef struct {
  Node *a, *b;
  guint children;
} UpWant;

static gboolean
pred_up (Net *net, gpointer user)
{
  UpWant *w = user;

  return modike_ike_count_sas (w->a->ike, TRUE) >= 1 && modike_ike_count_sas (w->b->ike, TRUE) >= 1 &&
         modike_sad_size (modike_ike_get_sad (w->a->ike)) == 2 * w->children &&
         modike_sad_size (modike_ike_get_sad (w->b->ike)) == 2 * w->children && g_queue_is_empty (&net->queue);
}

static gboolean
run_until_up (Net *net, Node *a, Node *b, guint children, guint limit_ms)
{
  UpWant w = { a, b, children };

  return net_run (net, limit_ms, pred_up, &w);
}

static ModikeIkeSa *
only_sa (Node *n)
{
  ModikeIkeSa *found = NULL;

  for (guint i = 0; i < n->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (n->ike->sas, i);

      if (sa->dead)
        continue;
      g_assert_null (found);
      found = sa;
    }
  g_assert_nonnull (found);
  return found;
}

static void
assert_secret_equal (const ModikeSecret *x, const ModikeSecret *y)
{
  if (x == NULL || y == NULL)
    {
      g_assert_true (x == NULL && y == NULL);
      return;
    }
  g_assert_cmpuint (x->len, ==, y->len);
  g_assert_cmpuint (x->len, >, 0);
  g_assert_true (modike_memeq (x->data, y->data, x->len));
}

static void
assert_range_equal (const ModikeAddrRange *x, const ModikeAddrRange *y)
{
  g_assert_true (modike_addr_equal_ip (&x->from, &y->from));
  g_assert_true (modike_addr_equal_ip (&x->to, &y->to));
}

/* Both ends agree: one IKE SA with the same cookies and algorithms; every
 * ESP SA of one end has its mirror at the other with the same keys. */
static void
check_pair (Node *a, Node *b, guint children)
{
  ModikeSad *sad_a = modike_ike_get_sad (a->ike), *sad_b = modike_ike_get_sad (b->ike);
  g_autoptr (GPtrArray) ea = modike_sad_entries (sad_a);
  ModikeIkeSa *sa_a = only_sa (a), *sa_b = only_sa (b);

  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  g_assert_true (memcmp (sa_a->icookie, sa_b->icookie, 8) == 0);
  g_assert_true (memcmp (sa_a->rcookie, sa_b->rcookie, 8) == 0);
  g_assert_cmpuint (sa_a->choice.encr, ==, sa_b->choice.encr);
  g_assert_cmpuint (sa_a->choice.keybits, ==, sa_b->choice.keybits);
  g_assert_cmpuint (sa_a->choice.hash, ==, sa_b->choice.hash);
  g_assert_cmpuint (sa_a->choice.group, ==, sa_b->choice.group);
  g_assert_cmpuint (sa_a->role, !=, sa_b->role);
  assert_secret_equal (sa_a->keys.skeyid_d, sa_b->keys.skeyid_d);
  assert_secret_equal (sa_a->keys.enc_key, sa_b->keys.enc_key);
  g_assert_cmpuint (modike_sad_size (sad_a), ==, 2 * children);
  g_assert_cmpuint (modike_sad_size (sad_b), ==, 2 * children);
  g_assert_cmpuint (sa_a->children->len, ==, children);
  g_assert_cmpuint (sa_b->children->len, ==, children);
  for (guint i = 0; i < ea->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (ea, i);
      ModikeDirection other = e->dir == MODIKE_DIR_IN ? MODIKE_DIR_OUT : MODIKE_DIR_IN;
      const ModikeSadEntry *m = modike_sad_lookup (sad_b, other, e->spi);
      const ModikeSadEntry *pair = NULL;
      g_autoptr (GPtrArray) all = modike_sad_entries (sad_a);

      g_assert_nonnull (m);
      g_assert_cmpuint (e->protocol, ==, MODIKE_PROTO_ESP);
      g_assert_cmpuint (e->esp_transform, ==, m->esp_transform);
      g_assert_cmpuint (e->key_bits, ==, m->key_bits);
      g_assert_cmpuint (e->auth_alg, ==, m->auth_alg);
      g_assert_cmpint (e->mode, ==, m->mode);
      g_assert_cmpint (e->udp_encap, ==, m->udp_encap);
      g_assert_cmpuint (e->hard.seconds, ==, m->hard.seconds);
      assert_secret_equal (e->enc_key, m->enc_key);
      assert_secret_equal (e->auth_key, m->auth_key);
      g_assert_cmpuint (e->enc_key->len, ==, engine_esp_enc_key_len (e->esp_transform, e->key_bits));
      /* Selectors mirror each other; outer addresses too. */
      assert_range_equal (&e->local_ts, &m->remote_ts);
      assert_range_equal (&e->remote_ts, &m->local_ts);
      g_assert_true (modike_addr_equal_ip (&e->src, &m->src));
      g_assert_true (modike_addr_equal_ip (&e->dst, &m->dst));
      g_assert_nonnull (e->peer);
      /* The two directions of one Quick Mode share a reqid. */
      for (guint j = 0; j < all->len; j++)
        {
          const ModikeSadEntry *o = g_ptr_array_index (all, j);

          if (o != e && o->reqid == e->reqid)
            pair = o;
        }
      g_assert_nonnull (pair);
      g_assert_cmpint (pair->dir, ==, other);
      g_assert_cmpuint (pair->spd_id, ==, e->spd_id);
      /* Keys of the two directions differ (different SPIs in KEYMAT). */
      g_assert_false (modike_memeq (pair->enc_key->data, e->enc_key->data, e->enc_key->len));
    }
}

static Net *
pair_new (const Params *p, Node **a, Node **b)
{
  Net *net = net_new ();

  *a = node_new (net, "a", p, TRUE);
  *b = node_new (net, "b", p, FALSE);
  return net;
}

/* A starts towards B; both come up with `children` ESP pairs each way. */
static void
bring_up (Net *net, Node *a, Node *b, guint children)
{
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (net, a, b, children, 30000));
}

/* A pair from p with A's phase 1 under way. */
static Net *
pair_start (const Params *p, Node **a, Node **b)
{
  Net *net = pair_new (p, a, b);

  g_assert_true (modike_ike_initiate ((*a)->ike, "b", NULL));
  return net;
}

/* A pair from p, brought up by A. */
static Net *
pair_up (const Params *p, Node **a, Node **b, guint children)
{
  Net *net = pair_new (p, a, b);

  bring_up (net, *a, *b, children);
  return net;
}

/* Each end saw phase 1 come up p1 times and Quick Mode p2 times. */
static void
assert_up_counts (Node *a, Node *b, guint p1, guint p2)
{
  g_assert_cmpuint (a->p1_up, ==, p1);
  g_assert_cmpuint (b->p1_up, ==, p1);
  g_assert_cmpuint (a->p2_up, ==, p2);
  g_assert_cmpuint (b->p2_up, ==, p2);
}

static void
assert_no_failures (Node *a, Node *b)
{
  g_assert_cmpuint (a->p1_failed + b->p1_failed + a->p2_failed + b->p2_failed, ==, 0);
}

static void
establish (const Params *p, gboolean a_initiates)
{
  Node *a, *b;
  Net *net = pair_new (p, &a, &b);
  g_autoptr (GError) error = NULL;
  Node *init = a_initiates ? a : b;

  g_assert_true (modike_ike_initiate (init->ike, a_initiates ? "b" : "a", &error));
  g_assert_no_error (error);
  g_assert_true (run_until_up (net, a, b, p->two_policies ? 2 : 1, 30000));
  check_pair (a, b, p->two_policies ? 2 : 1);
  assert_up_counts (a, b, 1, p->two_policies ? 2 : 1);
  assert_no_failures (a, b);
  g_assert_cmpint (only_sa (init)->role, ==, MODIKE_ROLE_INITIATOR);
  g_assert_cmpuint (only_sa (a)->p1_exchange, ==,
                    g_strcmp0 (p->exchange, "aggressive") == 0 ? MODIKE_EX_AGGRESSIVE : MODIKE_EX_MAIN);
  net_free (net);
}

/* ---- cases ---- */

typedef struct {
  const char *path, *exchange, *pfs;
  gboolean a_initiates;
} EstablishCase;

/* Both exchanges, with and without PFS, started from either end. */
static const EstablishCase establish_cases[] = {
  { "/fsm/main/a-initiates/no-pfs", "main", "none", TRUE },
  { "/fsm/main/a-initiates/pfs", "main", "modp2048", TRUE },
  { "/fsm/main/b-initiates/no-pfs", "main", "none", FALSE },
  { "/fsm/main/b-initiates/pfs", "main", "ecp256", FALSE },
  { "/fsm/aggressive/a-initiates/no-pfs", "aggressive", "none", TRUE },
  { "/fsm/aggressive/a-initiates/pfs", "aggressive", "modp2048", TRUE },
  { "/fsm/aggressive/b-initiates/no-pfs", "aggressive", "none", FALSE },
  { "/fsm/aggressive/b-initiates/pfs", "aggressive", "curve25519", FALSE },
};

static void
test_establish (gconstpointer data)
{
  const EstablishCase *c = data;
  Params p = params_default ();

  p.exchange = c->exchange;
  p.pfs = c->pfs;
  establish (&p, c->a_initiates);
}

typedef struct {
  const char *encr, *hash, *group, *esp, *integ, *pfs, *exchange;
} Algo;

/* Every phase 1 cipher, hash and group at least once; 3des-md5 and
 * aes256-md5 need the Appendix B key expansion. */
static const Algo algos[] = {
  { "3des", "md5", "modp1024", "3des", "md5", "none", "main" },
  { "aes128", "sha1", "modp1536", "aes128", "sha1", "modp1536", "main" },
  { "aes192", "sha256", "modp2048", "aes192", "sha256", "none", "aggressive" },
  { "aes256", "sha384", "modp3072", "aes256", "sha384", "none", "main" },
  { "aes128", "sha512", "modp4096", "aes128gcm16", NULL, "none", "main" },
  { "aes256", "md5", "ecp256", "aes256gcm16", NULL, "ecp256", "main" },
  { "aes128", "sha384", "ecp384", "aes256", "sha512", "ecp384", "aggressive" },
  { "aes192", "sha1", "curve25519", "aes128", "md5", "curve25519", "main" },
};

static void
test_algorithms (gconstpointer data)
{
  const Algo *al = data;
  Params p = params_default ();

  p.encr = al->encr;
  p.hash = al->hash;
  p.group = al->group;
  p.esp = al->esp;
  p.integ = al->integ;
  p.pfs = al->pfs;
  p.exchange = al->exchange;
  establish (&p, TRUE);
}

static void
test_ipv6 (void)
{
  Params p = params_default ();

  p.v6 = TRUE;
  p.pfs = "modp2048";
  establish (&p, TRUE);
  p.exchange = "aggressive";
  establish (&p, FALSE);
}

static void
test_transport (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) entries = NULL;

  p.mode = "transport";
  net = pair_up (&p, &a, &b, 1);
  check_pair (a, b, 1);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  g_assert_cmpint (((ModikeSadEntry *) g_ptr_array_index (entries, 0))->mode, ==, MODIKE_MODE_TRANSPORT);
  net_free (net);
}

static void
test_two_policies (void)
{
  Params p = params_default ();

  /* Two Quick Modes run at once on one IKE SA. */
  p.two_policies = TRUE;
  p.pfs = "modp2048";
  establish (&p, TRUE);
}

/* ---- status ---- */

static void
test_status (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GError) error = NULL;
  g_autofree char *sa_ = NULL, *sb = NULL;
  g_auto (GStrv) la = NULL, lb = NULL;
  g_autoptr (GRegex) ike_re = g_regex_new (
    "^IKE (\\S+) (ESTABLISHED|CONNECTING) i=([0-9a-f]{16}) r=([0-9a-f]{16}) (\\S+)-(\\S+)-(\\S+) "
    "(main|aggressive) (initiator|responder) life=([0-9]+)s$", 0, 0, NULL);
  g_autoptr (GRegex) esp_re = g_regex_new (
    "^  ESP (\\S+) in=([0-9a-f]{8}) out=([0-9a-f]{8}) (\\S+) (tunnel|transport)( udp-encap)? pfs=(\\S+) "
    "life=([0-9]+)s$", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  g_autofree char *in_a = NULL, *out_a = NULL;

  p.pfs = "modp2048";
  net = pair_new (&p, &a, &b);
  sa_ = modike_ike_status (a->ike);
  g_assert_cmpstr (sa_, ==, "");
  g_free (g_steal_pointer (&sa_));
  g_assert_true (modike_ike_initiate (a->ike, "b", &error));
  sa_ = modike_ike_status (a->ike);
  g_assert_true (g_regex_match (ike_re, sa_, G_REGEX_MATCH_NOTEMPTY, NULL) || strstr (sa_, "CONNECTING") != NULL);
  g_free (g_steal_pointer (&sa_));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  sa_ = modike_ike_status (a->ike);
  sb = modike_ike_status (b->ike);
  la = g_strsplit (sa_, "\n", -1);
  lb = g_strsplit (sb, "\n", -1);
  g_assert_cmpuint (g_strv_length (la), ==, 3); /* IKE, ESP, "" */
  g_assert_cmpstr (la[2], ==, "");

  g_assert_true (g_regex_match (ike_re, la[0], 0, &m));
  {
    g_autofree char *peer = g_match_info_fetch (m, 1);
    g_assert_cmpstr (peer, ==, "b");
  }
  {
    g_autofree char *s = g_match_info_fetch (m, 2), *e = g_match_info_fetch (m, 5), *h = g_match_info_fetch (m, 6),
                    *gr = g_match_info_fetch (m, 7), *mo = g_match_info_fetch (m, 8), *r = g_match_info_fetch (m, 9),
                    *l = g_match_info_fetch (m, 10);
    g_assert_cmpstr (s, ==, "ESTABLISHED");
    g_assert_cmpstr (e, ==, "aes128");
    g_assert_cmpstr (h, ==, "sha256");
    g_assert_cmpstr (gr, ==, "modp2048");
    g_assert_cmpstr (mo, ==, "main");
    g_assert_cmpstr (r, ==, "initiator");
    g_assert_cmpstr (l, ==, "28800");
  }
  g_clear_pointer (&m, g_match_info_unref);
  g_assert_true (g_regex_match (esp_re, la[1], 0, &m));
  {
    g_autofree char *al = g_match_info_fetch (m, 4), *mode = g_match_info_fetch (m, 5), *pfs = g_match_info_fetch (m, 7),
                    *life = g_match_info_fetch (m, 8);
    in_a = g_match_info_fetch (m, 2);
    out_a = g_match_info_fetch (m, 3);
    g_assert_cmpstr (al, ==, "aes128-sha256");
    g_assert_cmpstr (mode, ==, "tunnel");
    g_assert_cmpstr (pfs, ==, "modp2048");
    g_assert_cmpstr (life, ==, "3600");
  }
  g_clear_pointer (&m, g_match_info_unref);
  /* B's view: same cookies, SPIs crosswise, responder. */
  g_assert_true (g_regex_match (ike_re, lb[0], 0, &m));
  {
    g_autofree char *r = g_match_info_fetch (m, 9), *ic = g_match_info_fetch (m, 3);
    g_autofree char *want_ic = g_strndup (strstr (la[0], "i=") + 2, 16);
    g_assert_cmpstr (r, ==, "responder");
    g_assert_cmpstr (ic, ==, want_ic);
  }
  g_clear_pointer (&m, g_match_info_unref);
  g_assert_true (g_regex_match (esp_re, lb[1], 0, &m));
  {
    g_autofree char *in_b = g_match_info_fetch (m, 2), *out_b = g_match_info_fetch (m, 3);
    g_assert_cmpstr (in_b, ==, out_a);
    g_assert_cmpstr (out_b, ==, in_a);
  }
  net_free (net);
}

/* ---- loss, duplication ---- */

static void
test_loss (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  guint total = aggressive ? 6 : 9; /* phase 1 + Quick Mode messages */

  for (guint n = 1; n <= total; n++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;
      g_autoptr (GError) error = NULL;

      p.exchange = aggressive ? "aggressive" : "main";
      net = pair_new (&p, &a, &b);
      g_hash_table_add (net->drop, GUINT_TO_POINTER (n));
      g_assert_true (modike_ike_initiate (a->ike, "b", &error));
      if (!run_until_up (net, a, b, 1, 60000))
        g_error ("%s: lost packet %u was not recovered", p.exchange, n);
      check_pair (a, b, 1);
      assert_up_counts (a, b, 1, 1);
      /* Somebody retransmitted. */
      g_assert_cmpuint (a->ike->stats.retransmits + b->ike->stats.retransmits, >=, 1);
      net_free (net);
    }
}

static void
test_duplicates (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  guint total = aggressive ? 6 : 9;
  guint64 base_a, base_b;

  {
    Params p = params_default ();
    Node *a, *b;
    Net *net;

    p.exchange = aggressive ? "aggressive" : "main";
    net = pair_up (&p, &a, &b, 1);
    base_a = a->ike->stats.handler_calls;
    base_b = b->ike->stats.handler_calls;
    g_assert_cmpuint (base_a, >=, 4);
    net_free (net);
  }
  for (guint n = 1; n <= total; n++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;

      p.exchange = aggressive ? "aggressive" : "main";
      net = pair_new (&p, &a, &b);
      g_hash_table_add (net->dup, GUINT_TO_POINTER (n));
      bring_up (net, a, b, 1);
      check_pair (a, b, 1);
      /* Never processed twice: the same handler runs as without the copy. */
      g_assert_cmpuint (a->ike->stats.handler_calls, ==, base_a);
      g_assert_cmpuint (b->ike->stats.handler_calls, ==, base_b);
      g_assert_cmpuint (a->p1_up + b->p1_up + a->p2_up + b->p2_up, ==, 4);
      g_assert_cmpuint (a->ike->stats.rx_replays + a->ike->stats.rx_duplicates + b->ike->stats.rx_replays +
                          b->ike->stats.rx_duplicates,
                        >=, 1);
      net_free (net);
    }
}

/* ---- failures ---- */

static void
assert_no_sas (Node *n)
{
  g_assert_cmpuint (modike_ike_count_sas (n->ike, FALSE), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (n->ike)), ==, 0);
}

static void
test_no_proposal (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  /* A offers 3des-md5-modp1024; B takes only aes128-sha256-modp2048. */
  p.encr = "3des";
  p.hash = "md5";
  p.group = "modp1024";
  p.encr_b = "aes128";
  p.hash_b = "sha256";
  p.group_b = "modp2048";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_nonnull (strstr (a->p1_error->message, "NO_PROPOSAL_CHOSEN"));
  g_assert_nonnull (strstr (a->p1_error->message, "peer b"));
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  /* Two messages only: the offer and the plain notify. */
  g_assert_cmpuint (net->sent, ==, 2);
  net_free (net);
}

static void
test_no_esp_proposal (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.esp = "aes256";
  p.integ = "sha512";
  p.esp_b = "aes128";
  p.integ_b = "sha256";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (b->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_error (a->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (b->p2_failed, ==, 1);
  g_assert_error (b->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  net_free (net);
}

static void
test_wrong_psk (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.exchange = aggressive ? "aggressive" : "main";
  p.psk_b = "otherpsk";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

static FilterResult
filter_to_b (Net *net, guint n, Packet *pk, gpointer user)
{
  return pk->to != user ? FILTER_PASS : FILTER_DROP; /* B is unreachable */
}

static void
test_timeout (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.interval = 1000;
  p.tries = 3;
  p.half_open = 600;
  net = pair_new (&p, &a, &b);
  net->filter = filter_to_b;
  net->filter_user = b;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 14000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 0); /* 1+2+4 s of retransmits, then 8 s of waiting */
  g_assert_cmpuint (net->sent, ==, 4);
  net_run (net, 2000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_assert_cmpuint (net->sent, ==, 4);
  assert_no_sas (a);
  /* Half-open expiry when retransmits last longer. */
  p.half_open = 5;
  {
    Node *a2, *b2;
    Net *net2 = pair_new (&p, &a2, &b2);

    net2->filter = filter_to_b;
    net2->filter_user = b2;
    g_assert_true (modike_ike_initiate (a2->ike, "b", NULL));
    net_run (net2, 6000, NULL, NULL);
    g_assert_cmpuint (a2->p1_failed, ==, 1);
    g_assert_error (a2->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
    assert_no_sas (a2);
    net_free (net2);
  }
  net_free (net);
}

/* ---- delete, initial contact, lifetimes ---- */

static void
test_delete (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.two_policies = TRUE;
  net = pair_up (&p, &a, &b, 2);
  modike_ike_terminate (a->ike, "b");
  assert_no_sas (a);
  g_assert_cmpuint (a->deleted, ==, 1);
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (b);
  g_assert_cmpuint (b->deleted, ==, 1);
  g_assert_cmpuint (b->p1_failed + b->p2_failed, ==, 0);
  net_free (net);
}

static void
test_delete_child_only (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  ModikeIkeSa *sa;

  net = pair_up (&p, &a, &b, 1);
  sa = only_sa (a);
  engine_enter (a->ike);
  engine_child_remove (g_ptr_array_index (sa->children, 0), TRUE);
  engine_leave (a->ike);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  g_assert_cmpuint (only_sa (b)->children->len, ==, 0);
  net_free (net);
}

static void
test_initial_contact (void)
{
  Params p = params_default ();
  Node *a, *b, *a2;
  Net *net;
  guint8 old_icookie[8];

  net = pair_up (&p, &a, &b, 1);
  memcpy (old_icookie, only_sa (b)->icookie, 8);
  /* A reboots: its state is gone without a word to B. */
  node_free (a);
  a2 = node_new (net, "a2", &p, TRUE);
  g_assert_true (modike_ike_initiate (a2->ike, "b", NULL));
  g_assert_true (net_run (net, 30000, (NetPred) pred_up, &(UpWant){ a2, b, 1 }));
  net_run (net, 1000, NULL, NULL);
  check_pair (a2, b, 1);
  g_assert_false (memcmp (only_sa (b)->icookie, old_icookie, 8) == 0);
  g_assert_cmpuint (b->deleted, ==, 1);
  g_assert_cmpuint (b->p1_up, ==, 2);
  net_free (net);
}

static void
collect_spis (Node *n, GHashTable *into)
{
  g_autoptr (GPtrArray) all = modike_sad_entries (modike_ike_get_sad (n->ike));

  for (guint i = 0; i < all->len; i++)
    g_hash_table_add (into, GUINT_TO_POINTER (((ModikeSadEntry *) g_ptr_array_index (all, i))->spi));
}

static void
test_lifetimes (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint8 old_a[8], old_b[8];
  g_autoptr (GHashTable) old_spis = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) now = NULL;

  p.p1_life = 200;
  p.p2_life = 100;
  net = pair_up (&p, &a, &b, 1);
  memcpy (old_a, only_sa (a)->icookie, 8);
  memcpy (old_b, only_sa (b)->icookie, 8);
  collect_spis (a, old_spis);

  /* Children rekey at 85-90 s; the old pair goes at 100 s. */
  net_run (net, 95000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 4);
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 2);
  now = modike_sad_entries (modike_ike_get_sad (b->ike));
  for (guint i = 0; i < now->len; i++)
    g_assert_false (g_hash_table_contains (old_spis,
                                           GUINT_TO_POINTER (((ModikeSadEntry *) g_ptr_array_index (now, i))->spi)));

  /* Phase 1 rekeys at 170-180 s; the old SA goes at 200 s. */
  net_run (net, 150000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  g_assert_cmpuint (b->p1_up, ==, 2);
  assert_no_failures (a, b);
  check_pair (a, b, 1);
  g_assert_false (memcmp (only_sa (a)->icookie, old_a, 8) == 0);
  g_assert_false (memcmp (only_sa (b)->icookie, old_b, 8) == 0);
  g_assert_cmpuint (a->p2_up, >=, 3);
  net_free (net);
}

/* B allows 600 s where A asks for 3600 s: B answers with
 * RESPONDER-LIFETIME and both ends use 600 s. */
static void
test_responder_lifetime (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) entries = NULL;

  p.p2_life_b = 600;
  net = pair_up (&p, &a, &b, 1);
  check_pair (a, b, 1);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  g_assert_cmpuint (((ModikeSadEntry *) g_ptr_array_index (entries, 0))->hard.seconds, ==, 600);
  g_assert_cmpuint (((EngineChild *) g_ptr_array_index (only_sa (a)->children, 0))->choice.life_s, ==, 600);
  net_free (net);

  /* The other way round the initiator proposes the shorter one. */
  net = pair_new (&p, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  g_assert_cmpuint (((EngineChild *) g_ptr_array_index (only_sa (a)->children, 0))->choice.life_s, ==, 600);
  net_free (net);
}

/* Two Aggressive Mode peer configs on B for any address, told apart by
 * the initiator's ID: the one matching A's ID (and so its PSK) is used. */
static const char am_b_xml[] =
  "<modike>\n"
  "  <peer name=\"other\"><local address=\"192.0.2.1\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"other.example\"/>\n"
  "    <auth method=\"psk\" secret=\"not-this-one\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <peer name=\"a\"><local address=\"192.0.2.1\"/>\n"
  "    <local-id type=\"fqdn\" value=\"gw.example\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"client.example\"/>\n"
  "    <auth method=\"psk\" secret=\"rightpsk\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <policy name=\"net\" peer=\"a\" action=\"protect\" local=\"10.2.0.0/24\" remote=\"10.1.0.0/24\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "</modike>\n";

static const char am_a_xml[] =
  "<modike>\n"
  "  <peer name=\"b\"><local address=\"192.0.2.2\"/><remote address=\"192.0.2.1\"/>\n"
  "    <local-id type=\"fqdn\" value=\"%s\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"gw.example\"/>\n"
  "    <auth method=\"psk\" secret=\"rightpsk\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <policy name=\"net\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.2.0.0/24\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "</modike>\n";

static void
test_am_peer_by_id (void)
{
  Net *net = net_new ();
  g_autofree char *xa = g_strdup_printf (am_a_xml, "client.example");
  Node *a = node_new_xml (net, "a", "192.0.2.2", xa);
  Node *b = node_new_xml (net, "b", "192.0.2.1", am_b_xml);

  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  g_assert_cmpstr (modike_ike_sa_get_peer_name (only_sa (b)), ==, "a");
  net_free (net);

  /* An ID no config names: no SA, and A learns why. */
  net = net_new ();
  g_free (xa);
  xa = g_strdup_printf (am_a_xml, "stranger.example");
  a = node_new_xml (net, "a", "192.0.2.2", xa);
  b = node_new_xml (net, "b", "192.0.2.1", am_b_xml);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_PEER_NOTIFY);
  g_assert_nonnull (strstr (a->p1_error->message, "INVALID_ID_INFORMATION"));
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

/* ---- reload, forged messages, races ---- */

/* A takes a new config built from p; `name` labels its source. */
static void
reload_a (Node *a, const Params *p, const char *name)
{
  g_autofree char *xml = config_xml (p, TRUE);
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg = modike_config_load_string (xml, name, &error);

  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (a->ike, cfg, &error));
  g_assert_no_error (error);
  modike_config_free (a->cfg);
  a->cfg = cfg;
}

static void
test_reload (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint8 icookie[8];

  net = pair_up (&p, &a, &b, 1);
  memcpy (icookie, only_sa (a)->icookie, 8);

  /* The same config again (a new object): everything stays. */
  reload_a (a, &p, "same");
  net_run (net, 1000, NULL, NULL);
  check_pair (a, b, 1);
  g_assert_true (memcmp (only_sa (a)->icookie, icookie, 8) == 0);
  g_assert_true (only_sa (a)->peer == g_ptr_array_index (a->cfg->peers, 0));
  {
    /* The child follows its policy into the new SPD. */
    EngineChild *c = g_ptr_array_index (only_sa (a)->children, 0);
    const ModikeSpdEntry *e = modike_spd_get (modike_ike_get_spd (a->ike), c->spd_id);

    g_assert_nonnull (e);
    g_assert_cmpstr (e->name, ==, "net");
  }
  /* Initiating again changes nothing: the SA and its child exist. */
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 1000, NULL, NULL);
  check_pair (a, b, 1);

  /* A new secret: the SA goes, with DELETEs the peer acts on. */
  p.psk_a = "newpsk";
  reload_a (a, &p, "changed");
  assert_no_sas (a);
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (b);
  g_assert_cmpuint (b->deleted, ==, 1);
  net_free (net);
}

static void
test_forged_info (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  ModikeIkeSa *sa;
  g_autoptr (ModikeBuilder) bld = modike_builder_new ();
  g_autoptr (GBytes) pkt = NULL;
  g_autoptr (GByteArray) d = g_byte_array_new ();
  ModikeDeletePayload del = { 0 };
  guint8 zero[MODIKE_HASH_MAX] = { 0 }, iv[MODIKE_HASH_MAX], spi[16];
  guint32 msgid = 0x01020304;
  guint64 failures;

  net = pair_up (&p, &a, &b, 1);
  /* A DELETE of the ISAKMP SA with the right keys but a wrong HASH(1). */
  sa = only_sa (a);
  memcpy (spi, sa->icookie, 8);
  memcpy (spi + 8, sa->rcookie, 8);
  del.doi = MODIKE_DOI_IPSEC;
  del.protocol = MODIKE_PROTO_ISAKMP;
  del.spi_len = 16;
  del.spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_ptr_array_add (del.spis, g_bytes_new (spi, sizeof spi));
  modike_delete_payload_encode (&del, d);
  g_ptr_array_unref (del.spis);
  modike_builder_add (bld, MODIKE_PL_HASH, zero, modike_hash_len (sa->choice.hash));
  modike_builder_add (bld, MODIKE_PL_D, d->data, d->len);
  modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv);
  pkt = engine_build_packet (sa, MODIKE_EX_INFO, msgid, bld, iv, NULL);
  g_assert_nonnull (pkt);
  failures = b->ike->stats.auth_failures;
  modike_ike_receive (b->ike, &b->addr, &a->addr, g_bytes_get_data (pkt, NULL), g_bytes_get_size (pkt));
  g_assert_cmpuint (b->ike->stats.auth_failures, ==, failures + 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  g_assert_cmpuint (b->deleted, ==, 0);
  /* An unencrypted Informational on an established SA is ignored too. */
  {
    g_autoptr (ModikeBuilder) plain = modike_builder_new ();
    g_autoptr (GBytes) pk2 = NULL;

    modike_builder_add (plain, MODIKE_PL_D, d->data, d->len);
    pk2 = engine_build_packet (sa, MODIKE_EX_INFO, msgid + 1, plain, NULL, NULL);
    modike_ike_receive (b->ike, &b->addr, &a->addr, g_bytes_get_data (pk2, NULL), g_bytes_get_size (pk2));
    g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  }
  net_free (net);
}

/* Both ends start at once: two IKE SAs, and every ESP SA still has its
 * mirror with the same keys on the other side. */
static void
test_simultaneous (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) ea = NULL;

  net = pair_start (&p, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  net_run (net, 10000, NULL, NULL);
  assert_no_failures (a, b);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 2);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), >=, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==,
                    modike_sad_size (modike_ike_get_sad (b->ike)));
  ea = modike_sad_entries (modike_ike_get_sad (a->ike));
  for (guint i = 0; i < ea->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (ea, i);
      const ModikeSadEntry *m = modike_sad_lookup (modike_ike_get_sad (b->ike),
                                                   e->dir == MODIKE_DIR_IN ? MODIKE_DIR_OUT : MODIKE_DIR_IN, e->spi);

      g_assert_nonnull (m);
      assert_secret_equal (e->enc_key, m->enc_key);
      assert_secret_equal (e->auth_key, m->auth_key);
    }
  /* Terminating on one side clears both. */
  modike_ike_terminate (a->ike, "b");
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

/* ---- digest rejections ---- */

typedef struct {
  guint hold;
} HoldWant;

static FilterResult
filter_hold (Net *net, guint n, Packet *pk, gpointer user)
{
  HoldWant *w = user;

  if (n != w->hold)
    return FILTER_PASS;
  g_ptr_array_add (net->held, pk);
  return FILTER_TAKEN;
}

static ModikeExchange *
p1_exchange (Node *n)
{
  ModikeExchange *x = g_hash_table_lookup (only_sa (n)->exchanges, GUINT_TO_POINTER (0));

  g_assert_nonnull (x);
  return x;
}

static void
inject (Node *to, const Packet *like, const ModikeHeader *hdr, ModikeBuilder *b)
{
  guint8 first;
  g_autoptr (GBytes) chain = modike_builder_serialize (b, 0, &first);
  ModikeHeader h = *hdr;
  g_autoptr (GBytes) pkt = NULL;
  gsize len;

  h.next_payload = first;
  pkt = modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
  modike_ike_receive (to->ike, &like->dst, &like->src, g_bytes_get_data (pkt, &len), g_bytes_get_size (pkt));
}

static void
test_digest_reject (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  HoldWant w = { 3 };
  Packet *held;
  g_autoptr (ModikeMessage) m3 = NULL;
  g_autoptr (ModikeBuilder) bld = modike_builder_new ();
  const ModikePayload *ke;
  guint64 calls;
  ModikeHeader h;

  net = pair_new (&p, &a, &b);
  net->filter = filter_hold;
  net->filter_user = &w;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->held->len, ==, 1);
  held = g_ptr_array_index (net->held, 0);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R2);

  /* Message 3 with KE but without NONCE. */
  m3 = modike_message_parse (held->data, NULL);
  g_assert_nonnull (m3);
  ke = modike_message_find (m3, MODIKE_PL_KE);
  g_assert_nonnull (ke);
  modike_builder_add (bld, MODIKE_PL_KE, ke->body, ke->len);
  calls = b->ike->stats.handler_calls;
  inject (b, held, &m3->hdr, bld);
  g_assert_cmpuint (b->ike->stats.rx_digest_rejects, ==, 1);
  g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R2);

  /* A Quick Mode before phase 1 is up is dropped. */
  h = m3->hdr;
  h.exchange = MODIKE_EX_QUICK;
  h.msgid = 0x12345678;
  h.flags = MODIKE_FLAG_ENCRYPTION;
  {
    g_autoptr (ModikeBuilder) q = modike_builder_new ();
    guint8 junk[32] = { 0 };
    guint64 dropped = b->ike->stats.rx_dropped;

    modike_builder_add (q, MODIKE_PL_HASH, junk, sizeof junk);
    inject (b, held, &h, q);
    g_assert_cmpuint (b->ike->stats.rx_dropped, ==, dropped + 1);
    g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
  }

  /* The real message 3 still works; then hold message 5. */
  net->filter = NULL;
  g_ptr_array_remove_index (net->held, 0);
  g_queue_push_tail (&net->queue, held);
  w.hold = 5;
  net->filter = filter_hold;
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->held->len, ==, 1);
  held = g_ptr_array_index (net->held, 0);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R4);

  /* Message 5 in the clear (ID and HASH) is rejected: it must be encrypted. */
  {
    g_autoptr (ModikeBuilder) q = modike_builder_new ();
    g_autoptr (ModikeMessage) m5 = modike_message_parse (held->data, NULL);
    guint8 idb[8] = { MODIKE_ID_IPV4_ADDR, 0, 0, 0, 192, 0, 2, 2 };
    guint8 hash[32] = { 1 };

    g_assert_nonnull (m5);
    h = m5->hdr;
    h.flags = 0;
    modike_builder_add (q, MODIKE_PL_ID, idb, sizeof idb);
    modike_builder_add (q, MODIKE_PL_HASH, hash, sizeof hash);
    calls = b->ike->stats.handler_calls;
    inject (b, held, &h, q);
    g_assert_cmpuint (b->ike->stats.rx_digest_rejects, ==, 2);
    g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
    g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R4);
    g_assert_false (modike_ike_sa_is_established (only_sa (b)));
  }
  net->filter = NULL;
  g_ptr_array_remove_index (net->held, 0);
  g_queue_push_tail (&net->queue, held);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  net_free (net);
}

/* Random datagrams, some with a consistent header length and known cookies. */
static void
test_garbage (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_new (&p, &a, &b);
  ModikeAddr from;
  guint8 junk[300];
  static const guint8 exchanges[] = { MODIKE_EX_MAIN, MODIKE_EX_AGGRESSIVE, MODIKE_EX_INFO, MODIKE_EX_QUICK, 6, 99 };

  g_assert_true (modike_addr_parse ("192.0.2.2", 500, &from, NULL));
  for (guint round = 0; round < 2000; round++)
    {
      gsize len = g_test_rand_int_range (0, sizeof junk);

      for (gsize i = 0; i < len; i++)
        junk[i] = (guint8) g_test_rand_int ();
      if (len >= 28 && round % 4 != 0)
        {
          /* Past the header check: version, length, plausible types. */
          junk[16] = (guint8) g_test_rand_int_range (0, 16);
          junk[17] = 0x10;
          junk[18] = exchanges[round % G_N_ELEMENTS (exchanges)];
          junk[19] = (guint8) (round % 3 == 0 ? 1 : 0);
          if (round % 2 == 0)
            memset (junk + 8, 0, 8);
          if (round % 5 == 0)
            memset (junk + 20, 0, 4);
          junk[24] = (guint8) (len >> 24);
          junk[25] = (guint8) (len >> 16);
          junk[26] = (guint8) (len >> 8);
          junk[27] = (guint8) len;
        }
      modike_ike_receive (b->ike, &b->addr, &from, junk, len);
    }
  g_assert_cmpuint (b->ike->stats.rx_packets, ==, 2000);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 0);
  /* Stray responder SAs (a junk Main Mode message 1 may parse) time out. */
  net_run (net, 120000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, FALSE), ==, 0);
  /* The engine still works afterwards. */
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  net_free (net);
}

/* Every packet of a negotiation arrives, then corrupted copies of it
 * (payload bytes flipped, cookies intact): none may disturb the outcome. */
static FilterResult
filter_corrupt (Net *net, guint n, Packet *pk, gpointer user)
{
  guint *copies = user;
  gsize len;
  const guint8 *data = g_bytes_get_data (pk->data, &len);

  if (pk->to == NULL || len <= 28)
    return FILTER_PASS;
  /* The original first, then the copies, all before anything else. */
  g_queue_push_tail (&net->queue, pk);
  for (guint c = 0; c < *copies; c++)
    {
      Packet *d = g_new0 (Packet, 1);
      guint8 *buf = g_memdup2 (data, len);
      guint flips = g_test_rand_int_range (1, 4);

      for (guint f = 0; f < flips; f++)
        buf[g_test_rand_int_range (28, (gint32) len)] ^= (guint8) g_test_rand_int_range (1, 256);
      *d = *pk;
      d->data = g_bytes_new_take (buf, len);
      g_queue_push_tail (&net->queue, d);
    }
  return FILTER_TAKEN;
}

static void
test_corruption (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);

  for (guint round = 0; round < 20; round++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;
      guint copies = 1 + round % 3;

      p.exchange = aggressive ? "aggressive" : "main";
      p.pfs = round % 2 ? "modp1024" : "none";
      net = pair_new (&p, &a, &b);
      net->filter = filter_corrupt;
      net->filter_user = &copies;
      bring_up (net, a, b, 1);
      net_run (net, 1000, NULL, NULL);
      assert_up_counts (a, b, 1, 1);
      assert_no_failures (a, b);
      check_pair (a, b, 1);
      /* The copies were seen and thrown away somewhere along the path. */
      {
        const ModikeIkeStats *sa_ = &a->ike->stats, *sb = &b->ike->stats;

        g_assert_cmpuint (sa_->rx_garbage + sa_->rx_digest_rejects + sa_->rx_dropped + sa_->rx_no_row +
                            sa_->auth_failures + sb->rx_garbage + sb->rx_digest_rejects + sb->rx_dropped +
                            sb->rx_no_row + sb->auth_failures,
                          >=, copies);
      }
      net_free (net);
    }
}

/* ---- plugin hooks: a NAT-T look-alike registered in the test ---- */

typedef struct {
  guint vids, natd_claims, builds, floated_sends;
} FakeNatt;

static const guint8 fake_vid[] = "modike-test-vid";
static FakeNatt fake_counts[2];

static void
fake_on_vid (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  ((FakeNatt *) user)->vids++;
}

static gboolean
fake_build_natd (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  guint8 h[20];

  memset (h, 0x5a, sizeof h);
  modike_builder_add (b, MODIKE_PL_NAT_D, h, sizeof h);
  modike_builder_add (b, MODIKE_PL_NAT_D, h, sizeof h);
  ((FakeNatt *) user)->builds++;
  return TRUE;
}

static ModikeVerdict
fake_on_natd (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
              gpointer user, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);

  g_assert_cmpuint (n, ==, 2);
  ((FakeNatt *) user)->natd_claims++;
  modike_ike_sa_set_nat (sa, FALSE, TRUE);
  if (modike_ike_sa_get_role (sa) == MODIKE_ROLE_INITIATOR)
    modike_ike_sa_float (sa, 4500);
  return MODIKE_V_OK;
}

static guint16
fake_encap_out (ModikeIkeSa *sa, guint16 mode, gpointer user)
{
  return modike_ike_sa_nat_detected (sa) ? mode + 2 : mode;
}

static gboolean
fake_encap_in (ModikeIkeSa *sa, guint16 value, guint16 *mode, gboolean *udp, gpointer user)
{
  if (value != MODIKE_ENCAP_UDP_TUNNEL && value != MODIKE_ENCAP_UDP_TRANSPORT)
    return FALSE;
  *mode = value - 2;
  *udp = TRUE;
  return TRUE;
}

static const ModikeEncapOps fake_encap = { fake_encap_out, fake_encap_in };
static const ModikePluginDescriptor fake_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakenatt",
  .version = "0",
};

static void
fake_natt_register (Node *n, FakeNatt *counts, gboolean aggressive)
{
  static const ModikeMsgPoint mm[] = { { MODIKE_EX_MAIN, 3 }, { MODIKE_EX_MAIN, 4 } };
  static const ModikeMsgPoint am[] = { { MODIKE_EX_AGGRESSIVE, 2 }, { MODIKE_EX_AGGRESSIVE, 3 } };
  const ModikeMsgPoint *pts = aggressive ? am : mm;
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  g_assert_true (modike_register_vendor_id (pl, "test", fake_vid, sizeof fake_vid, MODIKE_VID_SEND, fake_on_vid,
                                            counts, &error));
  g_assert_true (modike_register_payload (pl, MODIKE_PL_NAT_D, pts, 2, 2, fake_on_natd, counts, &error));
  g_assert_true (modike_register_builder (pl, pts[0], fake_build_natd, counts, &error));
  g_assert_true (modike_register_builder (pl, pts[1], fake_build_natd, counts, &error));
  g_assert_true (modike_register_encap (pl, &fake_encap, counts, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
}

static FilterResult
filter_count_float (Net *net, guint n, Packet *pk, gpointer user)
{
  if (pk->src.port == 4500)
    {
      g_assert_cmpuint (pk->dst.port, ==, 4500);
      (*(guint *) user)++;
    }
  return FILTER_PASS;
}

static void
test_plugin_hooks (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint floated = 0;
  g_autoptr (GPtrArray) entries = NULL;
  g_autofree char *status = NULL;

  memset (fake_counts, 0, sizeof fake_counts);
  p.exchange = aggressive ? "aggressive" : "main";
  p.pfs = "modp2048";
  net = pair_new (&p, &a, &b);
  fake_natt_register (a, &fake_counts[0], aggressive);
  fake_natt_register (b, &fake_counts[1], aggressive);
  net->filter = filter_count_float;
  net->filter_user = &floated;
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  /* Vendor IDs in the first message of each side, NAT-D both ways. */
  g_assert_cmpuint (fake_counts[0].vids, ==, 1);
  g_assert_cmpuint (fake_counts[1].vids, ==, 1);
  g_assert_cmpuint (fake_counts[0].builds, ==, 1);
  g_assert_cmpuint (fake_counts[1].builds, ==, 1);
  g_assert_cmpuint (fake_counts[0].natd_claims, ==, 1);
  g_assert_cmpuint (fake_counts[1].natd_claims, ==, 1);
  /* From MM5/AM3 on everything runs on 4500: MM5, MM6, QM 1-3 (AM3, QM 1-3). */
  g_assert_cmpuint (floated, ==, aggressive ? 4 : 5);
  g_assert_true (only_sa (a)->floated && only_sa (b)->floated);
  g_assert_cmpuint (only_sa (b)->remote.port, ==, 4500);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (entries, i);

      g_assert_true (e->udp_encap);
      g_assert_cmpuint (e->encap_sport, ==, 4500);
      g_assert_cmpuint (e->encap_dport, ==, 4500);
      g_assert_cmpint (e->mode, ==, MODIKE_MODE_TUNNEL);
    }
  status = modike_ike_status (b->ike);
  g_assert_nonnull (strstr (status, " tunnel udp-encap pfs=modp2048 "));
  net_free (net);
}

/* ---- the table ---- */

static void
test_table (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = NULL;
  guint seen[256] = { 0 };

  g_assert_true (modike_ike_register_core (reg, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (reg, &error));
  /* A second registration of the core exchanges is refused. */
  g_assert_false (modike_ike_register_core (reg, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);

  rows = modike_registry_rows (reg);
  g_assert_cmpuint (rows->len, ==, 7 + 4 + 4 + 1);
  for (guint i = 0; i < rows->len; i++)
    {
      const ModikeFsmRow *r = g_ptr_array_index (rows, i);
      gboolean terminal = (r->flags & (MODIKE_ROW_DONE | MODIKE_ROW_P1_DONE)) != 0;

      g_assert_nonnull (r->name);
      g_assert_nonnull (r->handler);
      g_assert_true (r->exchange == MODIKE_EX_MAIN || r->exchange == MODIKE_EX_AGGRESSIVE ||
                     r->exchange == MODIKE_EX_QUICK || r->exchange == MODIKE_EX_INFO);
      seen[r->exchange]++;
      /* The row is what the engine finds for its key. */
      g_assert_true (modike_registry_find_row (reg, r->exchange, r->from, r->msg_no, r->role) == r);
      g_assert_cmpuint (r->required & r->optional, ==, 0);
      g_assert_cmpuint (r->repeatable & ~(r->required | r->optional), ==, 0);
      if (r->flags & MODIKE_ROW_INITIATE)
        {
          g_assert_cmpuint (r->msg_no, ==, 0);
          g_assert_cmpuint (r->from, ==, 0);
          g_assert_cmpint (r->role, ==, MODIKE_ROLE_INITIATOR);
          g_assert_cmpuint (r->required | r->optional, ==, 0);
        }
      else
        {
          g_assert_cmpuint (r->msg_no, >=, 1);
          /* Initiators receive even messages, responders odd ones. */
          g_assert_cmpuint (r->msg_no % 2, ==, r->role == MODIKE_ROLE_RESPONDER ? 1 : 0);
          g_assert_true ((r->flags & MODIKE_ROW_ENCRYPTED) == 0 || (r->flags & MODIKE_ROW_PLAIN) == 0);
        }
      if (r->flags & MODIKE_ROW_START)
        {
          g_assert_cmpuint (r->from, ==, 0);
          g_assert_cmpuint (r->msg_no, ==, 1);
        }
      if (terminal)
        g_assert_cmpuint (r->timeout_ms, ==, 0);
      else
        {
          /* Our next message is answered by the row two messages on. */
          const ModikeFsmRow *n = modike_registry_find_row (reg, r->exchange, r->next, r->msg_no + 2, r->role);

          g_assert_nonnull (n);
          g_assert_cmpuint (r->timeout_ms, >, 0);
        }
      /* Phase 1 ends encrypted except for Aggressive Mode's optional case. */
      if ((r->flags & MODIKE_ROW_P1_DONE) && r->exchange == MODIKE_EX_MAIN)
        g_assert_true (r->flags & MODIKE_ROW_ENCRYPTED);
      if (r->exchange == MODIKE_EX_QUICK || r->exchange == MODIKE_EX_INFO)
        g_assert_true ((r->flags & MODIKE_ROW_INITIATE) || (r->flags & MODIKE_ROW_ENCRYPTED));
    }
  g_assert_cmpuint (seen[MODIKE_EX_MAIN], ==, 7);
  g_assert_cmpuint (seen[MODIKE_EX_AGGRESSIVE], ==, 4);
  g_assert_cmpuint (seen[MODIKE_EX_QUICK], ==, 4);
  g_assert_cmpuint (seen[MODIKE_EX_INFO], ==, 1);
}

static void
test_selectors (void)
{
  ModikeAddrRange r, back;
  ModikePortRange ports = { 53, 53 }, pback;
  guint8 proto = 0;
  g_autoptr (ModikeIdPayload) id = NULL;
  g_autoptr (GError) error = NULL;
  ModikePrefix pre;

  g_assert_true (modike_prefix_parse ("10.1.0.0/24", &pre, &error));
  g_assert_true (modike_addr_range_from_prefix (&pre, &r));
  id = qm_id_from_range (&r, 17, &ports);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR_SUBNET);
  g_assert_cmpuint (id->port, ==, 53);
  g_assert_cmpuint (g_bytes_get_size (id->data), ==, 8);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (id->data, NULL))[7], ==, 0);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (id->data, NULL))[6], ==, 255);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
  g_assert_cmpuint (proto, ==, 17);
  g_assert_cmpuint (pback.from, ==, 53);
  g_assert_cmpuint (pback.to, ==, 53);
  g_clear_pointer (&id, modike_id_payload_free);

  g_assert_true (modike_prefix_parse ("2001:db8:a::/64", &pre, &error));
  g_assert_true (modike_addr_range_from_prefix (&pre, &r));
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV6_ADDR_SUBNET);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
  g_assert_cmpuint (pback.to, ==, 65535);
  g_clear_pointer (&id, modike_id_payload_free);

  /* A host is an address; an odd range stays a range. */
  g_assert_true (modike_addr_parse ("192.0.2.7", 0, &r.from, &error));
  r.to = r.from;
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR);
  g_clear_pointer (&id, modike_id_payload_free);
  g_assert_true (modike_addr_parse ("192.0.2.9", 0, &r.to, &error));
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR_RANGE);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
}

/* ---- the datapath and virtual adapters: fake plugins on the node's
 * registry record what the engine asks of them ---- */

/* One log for both fakes, to check the order of their calls. */
static void
fake_log (GPtrArray *log, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
fake_log (GPtrArray *log, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  g_ptr_array_add (log, g_strdup_vprintf (fmt, ap));
  va_end (ap);
}

static const char *
fmt_prefix (const ModikePrefix *p, char *buf, gsize len)
{
  ModikeAddr a = p->net;
  char ab[MODIKE_ADDR_STRLEN];

  a.port = 0;
  g_snprintf (buf, len, "%s/%u", modike_addr_format (&a, ab, sizeof ab), p->plen);
  return buf;
}

typedef struct {
  GPtrArray *log;            /* char*, shared with the FakeOs */
  ModikeDatapathHost *host;
  guint starts, stops, sa_adds, sa_dels, policy_sets;
  GHashTable *sas;           /* "in:%08x" / "out:%08x" -> ModikeSadEntry* (copies) */
  GPtrArray *policies;       /* the last policies_set */
  gboolean refuse;           /* sa_add fails */
  gboolean calls_in_stop;    /* host calls from stop, as a racing thread would */
} FakeDp;

static char *
sa_key (ModikeDirection dir, guint32 spi)
{
  return g_strdup_printf ("%s:%08x", dir == MODIKE_DIR_IN ? "in" : "out", spi);
}

static gboolean
fdp_start (gpointer user, ModikeDatapathHost *host, GError **error)
{
  FakeDp *dp = user;

  dp->starts++;
  dp->host = host;
  fake_log (dp->log, "start");
  return TRUE;
}

static void
fdp_stop (gpointer user)
{
  FakeDp *dp = user;
  static const guint8 junk[28] = { 1, 2, 3 };
  ModikeAddr l = { 0 }, r = { 0 };

  dp->stops++;
  fake_log (dp->log, "stop");
  if (dp->calls_in_stop)
    {
      /* The engine stopped listening before calling us: dropped. */
      l.family = r.family = AF_INET;
      modike_datapath_acquire (dp->host, 1, NULL);
      modike_datapath_expire (dp->host, MODIKE_DIR_IN, 0x1234, TRUE);
      modike_datapath_ike_input (dp->host, &l, &r, junk, sizeof junk);
    }
  dp->host = NULL;
}

static gboolean
fdp_sa_add (gpointer user, const ModikeSadEntry *sa, GError **error)
{
  FakeDp *dp = user;

  dp->sa_adds++;
  if (dp->refuse)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "fake datapath refuses SA %08x", sa->spi);
      return FALSE;
    }
  g_hash_table_insert (dp->sas, sa_key (sa->dir, sa->spi), modike_sad_entry_dup (sa));
  return TRUE;
}

static void
fdp_sa_del (gpointer user, ModikeDirection dir, guint32 spi)
{
  FakeDp *dp = user;
  g_autofree char *key = sa_key (dir, spi);

  dp->sa_dels++;
  /* Only SAs it was given are taken back. */
  g_assert_true (g_hash_table_remove (dp->sas, key));
}

static void
fdp_policies_set (gpointer user, GPtrArray *entries)
{
  FakeDp *dp = user;

  dp->policy_sets++;
  g_clear_pointer (&dp->policies, g_ptr_array_unref);
  dp->policies = entries;
  fake_log (dp->log, "policies %u", entries->len);
}

static gboolean
fdp_adapter_attach (gpointer user, const char *peer, const int *fds, guint n_fds, guint flags, GError **error)
{
  FakeDp *dp = user;
  g_autoptr (GString) s = g_string_new (NULL);

  for (guint i = 0; i < n_fds; i++)
    g_string_append_printf (s, "%s%d", i > 0 ? "," : "", fds[i]);
  fake_log (dp->log, "attach %s fds=%s flags=%u", peer, s->str, flags);
  return TRUE;
}

static void
fdp_adapter_detach (gpointer user, const char *peer)
{
  fake_log (((FakeDp *) user)->log, "detach %s", peer);
}

static gboolean
fdp_socket_attach (gpointer user, int fd, const ModikeAddr *local, GError **error)
{
  FakeDp *dp = user;

  fake_log (dp->log, "socket %d port %u", fd, local->port);
  if (fd < 0 || fd > 1000)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "not this one");
      return FALSE;
    }
  return TRUE;
}

/* Fixed counters: the status must show their sums. */
static void
fdp_sa_stats (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out)
{
  memset (out, 0, sizeof *out);
  out->packets = dir == MODIKE_DIR_IN ? 3 : 4;
  out->bytes = dir == MODIKE_DIR_IN ? 300 : 400;
  out->drops[dir == MODIKE_DIR_IN ? MODIKE_DROP_REPLAY : MODIKE_DROP_AUTH] = dir == MODIKE_DIR_IN ? 1 : 2;
}

static const ModikeDatapathOps fake_dp_ops = {
  .name = "fakedp",
  .start = fdp_start,
  .stop = fdp_stop,
  .sa_add = fdp_sa_add,
  .sa_del = fdp_sa_del,
  .policies_set = fdp_policies_set,
  .adapter_attach = fdp_adapter_attach,
  .adapter_detach = fdp_adapter_detach,
  .socket_attach = fdp_socket_attach,
  .sa_stats = fdp_sa_stats,
};

static const ModikePluginDescriptor fake_dp_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakedp",
  .version = "0",
};

static void
fake_dp_init (FakeDp *dp, GPtrArray *log)
{
  memset (dp, 0, sizeof *dp);
  dp->log = log;
  dp->sas = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) modike_sad_entry_free);
}

static void
fake_dp_clear (FakeDp *dp)
{
  g_hash_table_destroy (dp->sas);
  g_clear_pointer (&dp->policies, g_ptr_array_unref);
}

static void
fake_dp_register (Node *n, FakeDp *dp)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_dp_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  g_assert_true (modike_register_datapath (pl, &fake_dp_ops, dp, &error));
  g_assert_no_error (error);
}

/* The datapath holds exactly the SAD, keys included. */
static void
fake_dp_assert_mirror (FakeDp *dp, Node *n)
{
  g_autoptr (GPtrArray) all = modike_sad_entries (modike_ike_get_sad (n->ike));

  g_assert_cmpuint (g_hash_table_size (dp->sas), ==, all->len);
  for (guint i = 0; i < all->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (all, i);
      g_autofree char *key = sa_key (e->dir, e->spi);
      const ModikeSadEntry *m = g_hash_table_lookup (dp->sas, key);

      g_assert_nonnull (m);
      g_assert_cmpuint (m->reqid, ==, e->reqid);
      g_assert_cmpuint (m->spd_id, ==, e->spd_id);
      assert_secret_equal (m->enc_key, e->enc_key);
      assert_secret_equal (m->auth_key, e->auth_key);
    }
}

typedef struct {
  GPtrArray *log;
  gboolean no_offload;       /* VNET_HDR asked for but not granted */
  gboolean fail_create;
  guint live;
} FakeOs;

typedef struct {
  FakeOs *os;
  char *name;
  guint queues, flags, mtu;
  GPtrArray *log;
} FakeAdapter;

static gpointer
fos_create (gpointer user, const char *ifname, guint n_queues, guint flags, GError **error)
{
  FakeOs *os = user;
  FakeAdapter *a;

  fake_log (os->log, "create %s queues=%u flags=%u", ifname, n_queues, flags);
  if (os->fail_create)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "no tun for you");
      return NULL;
    }
  a = g_new0 (FakeAdapter, 1);
  a->os = os;
  a->name = g_strdup (ifname);
  a->queues = n_queues;
  a->flags = os->no_offload ? 0 : flags;
  a->log = os->log;
  os->live++;
  return a;
}

static gboolean
fos_set_address (gpointer adapter, const ModikePrefix *addr, guint mtu, GError **error)
{
  FakeAdapter *a = adapter;
  char buf[80];

  a->mtu = mtu;
  fake_log (a->log, "address %s %s mtu=%u", a->name, fmt_prefix (addr, buf, sizeof buf), mtu);
  return TRUE;
}

static gboolean
fos_add_route (gpointer adapter, const ModikePrefix *dst, GError **error)
{
  FakeAdapter *a = adapter;
  char buf[80];

  fake_log (a->log, "route+ %s %s", a->name, fmt_prefix (dst, buf, sizeof buf));
  return TRUE;
}

static gboolean
fos_del_route (gpointer adapter, const ModikePrefix *dst, GError **error)
{
  FakeAdapter *a = adapter;
  char buf[80];

  fake_log (a->log, "route- %s %s", a->name, fmt_prefix (dst, buf, sizeof buf));
  return TRUE;
}

static void
fos_destroy (gpointer adapter)
{
  FakeAdapter *a = adapter;

  fake_log (a->log, "destroy %s", a->name);
  a->os->live--;
  g_free (a->name);
  g_free (a);
}

static int
fos_get_fd (gpointer adapter, guint queue)
{
  return 100 + (int) queue; /* never used as an fd by the fake datapath */
}

static guint
fos_get_n_queues (gpointer adapter)
{
  return ((FakeAdapter *) adapter)->queues;
}

static guint
fos_get_flags (gpointer adapter)
{
  return ((FakeAdapter *) adapter)->flags;
}

static const char *
fos_get_name (gpointer adapter)
{
  return ((FakeAdapter *) adapter)->name;
}

static const ModikeOsAdapterOps fake_os_ops = {
  .name = "fakeos",
  .create = fos_create,
  .set_address = fos_set_address,
  .add_route = fos_add_route,
  .del_route = fos_del_route,
  .destroy = fos_destroy,
  .get_fd = fos_get_fd,
  .get_n_queues = fos_get_n_queues,
  .get_flags = fos_get_flags,
  .get_name = fos_get_name,
};

static const ModikePluginDescriptor fake_os_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakeos",
  .version = "0",
};

static void
fake_os_register (Node *n, FakeOs *os)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_os_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  g_assert_true (modike_register_os_adapter (pl, &fake_os_ops, os, &error));
  g_assert_no_error (error);
}

/* A and B from params, with the fakes given (NULL: none) registered
 * before the config is applied. */
static Net *
dp_pair_new (const Params *p, FakeDp *dpa, FakeDp *dpb, FakeOs *osa, Node **a, Node **b)
{
  Net *net = net_new ();
  g_autofree char *xa = config_xml (p, TRUE);
  g_autofree char *xb = config_xml (p, FALSE);

  *a = node_alloc (net, "a", "192.0.2.2");
  *b = node_alloc (net, "b", "192.0.2.1");
  if (dpa != NULL)
    fake_dp_register (*a, dpa);
  if (osa != NULL)
    fake_os_register (*a, osa);
  if (dpb != NULL)
    fake_dp_register (*b, dpb);
  node_configure (*a, xa);
  node_configure (*b, xb);
  return net;
}

/* Runs what the host calls queued on the main context. */
static void
host_flush (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static guint32
spd_id_of (Node *n, const char *name)
{
  g_autoptr (GPtrArray) all = modike_spd_entries (modike_ike_get_spd (n->ike));

  for (guint i = 0; i < all->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (all, i);

      if (g_strcmp0 (e->name, name) == 0)
        return e->id;
    }
  g_assert_not_reached ();
}

static ModikeSelector
sel_a_to_b (void)
{
  ModikeSelector sel = { 0 };

  g_assert_true (modike_addr_parse ("10.1.0.5", 0, &sel.local, NULL));
  g_assert_true (modike_addr_parse ("10.2.0.7", 0, &sel.remote, NULL));
  sel.proto = 1;
  return sel;
}

/* Quick Modes running (not finished ones lingering for retransmits). */
static guint
quick_modes (Node *n)
{
  guint count = 0;

  for (guint i = 0; i < n->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (n->ike->sas, i);
      GHashTableIter it;
      gpointer value;

      g_hash_table_iter_init (&it, sa->exchanges);
      while (g_hash_table_iter_next (&it, NULL, &value))
        {
          const ModikeExchange *x = value;

          if (x->type == MODIKE_EX_QUICK && !x->dead && !x->done)
            count++;
        }
    }
  return count;
}

static gboolean
log_has (GPtrArray *log, const char *line)
{
  for (guint i = 0; i < log->len; i++)
    if (g_strcmp0 (g_ptr_array_index (log, i), line) == 0)
      return TRUE;
  return FALSE;
}

/* The log from `from` on equals `want` (NULL-terminated), in order. */
static void
assert_log (GPtrArray *log, guint from, const char *const *want)
{
  guint n = g_strv_length ((char **) want);

  for (guint i = 0; i < log->len; i++)
    g_test_message ("log[%u] %s", i, (const char *) g_ptr_array_index (log, i));
  g_assert_cmpuint (log->len - from, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (g_ptr_array_index (log, from + i), ==, want[i]);
}

static void
test_dp_sad_mirror (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  g_autofree char *status = NULL;
  g_autoptr (GPtrArray) spd = NULL;
  g_autoptr (GRegex) esp_re = g_regex_new (
    "^  ESP b in=[0-9a-f]{8} out=[0-9a-f]{8} aes128-sha256 tunnel pfs=none life=3600s "
    "packets=3/4 bytes=300/400 drops=3$", G_REGEX_MULTILINE, 0, NULL);
  ModikeAddr local;

  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  p.two_policies = TRUE;
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  g_assert_cmpuint (da.starts, ==, 1);
  g_assert_nonnull (da.host);
  /* The SPD, as copies the datapath owns. */
  spd = modike_spd_entries (modike_ike_get_spd (a->ike));
  g_assert_cmpuint (da.policy_sets, ==, 1);
  g_assert_cmpuint (da.policies->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      const ModikeSpdEntry *mine = g_ptr_array_index (da.policies, i), *real = g_ptr_array_index (spd, i);

      g_assert_true (mine != real);
      g_assert_cmpstr (mine->name, ==, real->name);
      g_assert_cmpuint (mine->id, ==, real->id);
      g_assert_cmpint (mine->action, ==, MODIKE_SPD_PROTECT);
    }

  bring_up (net, a, b, 2);
  check_pair (a, b, 2);
  g_assert_cmpuint (da.sa_adds, ==, 4);
  fake_dp_assert_mirror (&da, a);
  fake_dp_assert_mirror (&db, b);

  /* Counters from the datapath end the ESP lines. */
  status = modike_ike_status (a->ike);
  g_test_message ("%s", status);
  g_assert_true (g_regex_match (esp_re, status, 0, NULL));

  /* The 4500 socket goes to the datapath if it takes it. */
  g_assert_true (modike_addr_parse ("0.0.0.0", 4500, &local, NULL));
  g_assert_true (modike_ike_offer_socket (a->ike, 7, &local));
  g_assert_true (log_has (log, "socket 7 port 4500"));
  g_assert_false (modike_ike_offer_socket (a->ike, 1001, &local));

  /* A reload gives the policies again, never a second start. */
  reload_a (a, &p, "again");
  g_assert_cmpuint (da.starts, ==, 1);
  g_assert_cmpuint (da.policy_sets, ==, 2);
  fake_dp_assert_mirror (&da, a);

  /* Deleting follows through on both ends. */
  modike_ike_terminate (a->ike, "b");
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  g_assert_cmpuint (g_hash_table_size (db.sas), ==, 0);
  g_assert_cmpuint (da.sa_dels, ==, 4);
  g_assert_cmpuint (db.sa_dels, ==, 4);
  net_free (net);
  g_assert_cmpuint (da.stops, ==, 1);
  g_assert_cmpuint (db.stops, ==, 1);
  g_assert_null (da.host);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

static void
test_dp_acquire_phase1 (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeSelector sel = sel_a_to_b ();
  guint32 spd;
  guint sent;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  spd = spd_id_of (a, "net");
  modike_datapath_acquire (da.host, spd, &sel);
  /* Queued for the main loop, not run inside the call. */
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 1);
  g_assert_cmpuint (net->sent, ==, 1);
  /* While it runs (even past the rate limit) more acquires do nothing. */
  net->now_us += 2 * G_USEC_PER_SEC;
  modike_datapath_acquire (da.host, spd, &sel);
  modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 1);
  g_assert_cmpuint (net->sent, ==, 1);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_up, ==, 1);
  fake_dp_assert_mirror (&da, a);
  /* With the SA up: nothing either. */
  sent = net->sent;
  modike_datapath_acquire (da.host, spd, &sel);
  host_flush ();
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, sent);
  g_assert_cmpuint (a->p2_up, ==, 1);
  net_free (net);
  fake_dp_clear (&da);
}

typedef struct {
  ModikeDatapathHost *host;
  guint32 spd_id;
  ModikeSelector sel;
  GThread *caller;
} AcquireArgs;

static gpointer
acquire_thread (gpointer data)
{
  AcquireArgs *args = data;

  args->caller = g_thread_self ();
  modike_datapath_acquire (args->host, args->spd_id, &args->sel);
  return NULL;
}

/* The IKE SA is up but the policy has no child: only a Quick Mode, asked
 * for from a datapath thread. */
static void
test_dp_acquire_quick_mode_thread (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  AcquireArgs args = { 0 };
  GThread *t;
  guint sent;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  bring_up (net, a, b, 1);
  engine_enter (a->ike);
  engine_child_remove (g_ptr_array_index (only_sa (a)->children, 0), TRUE);
  engine_leave (a->ike);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  sent = net->sent;

  args.host = da.host;
  args.spd_id = spd_id_of (a, "net");
  args.sel = sel_a_to_b ();
  t = g_thread_new ("fake-datapath", acquire_thread, &args);
  g_thread_join (t);
  g_assert_true (args.caller != g_thread_self ());
  /* The engine did nothing on the datapath's thread. */
  g_assert_cmpuint (quick_modes (a), ==, 0);
  g_assert_cmpuint (net->sent, ==, sent);
  host_flush ();
  g_assert_cmpuint (quick_modes (a), ==, 1);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  /* Three messages: Quick Mode alone on the existing IKE SA. */
  g_assert_cmpuint (net->sent - sent, ==, 3);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_up, ==, 2);
  fake_dp_assert_mirror (&da, a);
  net_free (net);
  fake_dp_clear (&da);
}

/* A peer that refuses: acquires are tried again at most once a second,
 * and one that comes too early is deferred, not lost. */
static void
test_dp_acquire_rate_limit (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  guint32 spd;

  p.encr = "3des";
  p.hash = "md5";
  p.group = "modp1024";
  p.encr_b = "aes128";
  p.hash_b = "sha256";
  p.group_b = "modp2048";
  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  spd = spd_id_of (a, "net");
  modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_cmpuint (net->sent, ==, 2);
  /* 100 ms later: three more, all deferred into one attempt at 1 s. */
  for (guint i = 0; i < 3; i++)
    modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  g_assert_cmpuint (net->sent, ==, 2);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  net_run (net, 850, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, 2);
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, 4);
  g_assert_cmpuint (a->p1_failed, ==, 2);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 2);
  net_free (net);
  fake_dp_clear (&da);
}

static void
test_dp_expire_soft (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  EngineChild *c;
  guint32 old_in, old_out;

  p.p2_life = 100;
  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  bring_up (net, a, b, 1);
  /* Half way through the lifetime, the volume runs out in A's datapath. */
  net_run (net, 50000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  c = g_ptr_array_index (only_sa (a)->children, 0);
  old_in = c->spi_in;
  old_out = c->spi_out;
  modike_datapath_expire (da.host, MODIKE_DIR_IN, old_in, FALSE);
  host_flush ();
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  g_assert_cmpuint (b->p2_up, ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 4);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 4);
  /* The old pair works on until its end. */
  g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, old_in));
  g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (b->ike), MODIKE_DIR_OUT, old_in));
  g_assert_true (c->rekeyed);
  fake_dp_assert_mirror (&da, a);
  fake_dp_assert_mirror (&db, b);
  /* Again for the same SA: it is being replaced already. */
  modike_datapath_expire (da.host, MODIKE_DIR_OUT, old_out, FALSE);
  host_flush ();
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  /* At 100 s the old pair is gone on both ends, the new one stays. */
  net_run (net, 41000, NULL, NULL);
  g_assert_null (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, old_in));
  g_assert_null (modike_sad_lookup (modike_ike_get_sad (b->ike), MODIKE_DIR_OUT, old_in));
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  check_pair (a, b, 1);
  fake_dp_assert_mirror (&da, a);
  /* B ran its Quick Mode as responder: it would not rekey on time, but a
   * soft expiry in its datapath still brings a new pair. */
  c = g_ptr_array_index (only_sa (b)->children, 0);
  g_assert_false (c->initiator);
  modike_datapath_expire (db.host, MODIKE_DIR_IN, c->spi_in, FALSE);
  host_flush ();
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 3);
  g_assert_cmpuint (b->p2_up, ==, 3);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 4);
  g_assert_true (c->rekeyed);
  assert_no_failures (a, b);
  net_free (net);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

static void
test_dp_expire_hard (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  EngineChild *c;

  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  c = g_ptr_array_index (only_sa (a)->children, 0);
  modike_datapath_expire (da.host, MODIKE_DIR_OUT, c->spi_out, TRUE);
  host_flush ();
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  net_run (net, 1000, NULL, NULL);
  /* DELETE told B; the IKE SA stays on both ends. */
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (db.sas), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  /* An unknown SPI is ignored. */
  modike_datapath_expire (da.host, MODIKE_DIR_IN, 0xdeadbeef, TRUE);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  net_free (net);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

/* The datapath refuses the SAs: they are deleted on both ends. */
static void
test_dp_refused (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;

  fake_dp_init (&da, log);
  da.refuse = TRUE;
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (da.sa_adds, ==, 2);
  g_assert_cmpuint (a->p2_up, ==, 0);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_nonnull (strstr (a->p2_error->message, "datapath refused"));
  /* B got its SAs with message 3, then the DELETE. */
  g_assert_cmpuint (b->p2_up, ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (only_sa (a)->children->len, ==, 0);
  g_assert_cmpuint (only_sa (b)->children->len, ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  /* What it refused is not taken back from it. */
  g_assert_cmpuint (da.sa_dels, ==, 0);
  net_free (net);
  fake_dp_clear (&da);
}

/* Host calls queued before the stop, or made during it, are dropped. */
static void
test_dp_host_after_stop (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeAddr l, r;
  static const guint8 junk[40] = { 9 };

  fake_dp_init (&da, log);
  da.calls_in_stop = TRUE;
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_addr_parse ("192.0.2.2", 4500, &l, NULL));
  g_assert_true (modike_addr_parse ("192.0.2.1", 4500, &r, NULL));
  modike_datapath_acquire (da.host, spd_id_of (a, "net"), NULL);
  modike_datapath_ike_input (da.host, &l, &r, junk, sizeof junk);
  net_free (net);
  g_assert_cmpuint (da.stops, ==, 1);
  host_flush ();
  g_assert_false (g_main_context_pending (NULL));
  fake_dp_clear (&da);
}

/* IKE datagrams the datapath read reach the engine. */
static void
test_dp_ike_input (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeAddr l, r;
  static const guint8 junk[40] = { 9 };
  guint64 before;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_addr_parse ("192.0.2.2", 4500, &l, NULL));
  g_assert_true (modike_addr_parse ("192.0.2.1", 4500, &r, NULL));
  before = a->ike->stats.rx_packets;
  modike_datapath_ike_input (da.host, &l, &r, junk, sizeof junk);
  g_assert_cmpuint (a->ike->stats.rx_packets, ==, before);
  host_flush ();
  g_assert_cmpuint (a->ike->stats.rx_packets, ==, before + 1);
  g_assert_cmpuint (a->ike->stats.rx_garbage, >=, 1);
  net_free (net);
  fake_dp_clear (&da);
}

static const char adapter_mk0[] =
  "    <adapter name=\"mk0\" address=\"203.0.113.1/32\" queues=\"2\"/>\n";
static const char adapter_mk0_mtu[] =
  "    <adapter name=\"mk0\" address=\"203.0.113.1/32\" queues=\"2\" mtu=\"1300\"/>\n";
static const char range_policies[] =
  "  <policy name=\"range\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.3.0.1-10.3.0.6\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "  <policy name=\"dns\" action=\"bypass\" remote=\"10.5.0.53\"/>\n";

static void
test_adapters (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  FakeOs os = { 0 };
  Node *a, *b;
  Net *net;
  guint mark;

  fake_dp_init (&da, log);
  os.log = log;
  p.peer_extra_a = adapter_mk0;
  p.policies_extra_a = range_policies;
  net = dp_pair_new (&p, &da, NULL, &os, &a, &b);
  {
    /* Created, addressed, attached; routes once the datapath has the
     * policies; a range becomes the prefixes that cover it exactly. */
    static const char *const want[] = {
      "start", "create mk0 queues=2 flags=1", "address mk0 203.0.113.1/32 mtu=1400",
      "attach b fds=100,101 flags=1", "policies 3", "route+ mk0 10.2.0.0/24", "route+ mk0 10.3.0.1/32",
      "route+ mk0 10.3.0.2/31", "route+ mk0 10.3.0.4/31", "route+ mk0 10.3.0.6/32", NULL,
    };
    assert_log (log, 0, want);
  }
  g_assert_cmpuint (os.live, ==, 1);
  /* (B has no policy "range": only "net" comes up.) */
  bring_up (net, a, b, 1);

  /* The same config again: nothing moves. */
  mark = log->len;
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = { "policies 3", NULL };
    assert_log (log, mark, want);
  }
  /* Other policies: the routes follow, the adapter and the SAs stay. */
  mark = log->len;
  p.policies_extra_a =
    "  <policy name=\"wide\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.4.0.0/16\">\n"
    "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
    "  </policy>\n";
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = {
      "policies 2", "route- mk0 10.3.0.6/32", "route- mk0 10.3.0.4/31", "route- mk0 10.3.0.2/31",
      "route- mk0 10.3.0.1/32", "route+ mk0 10.4.0.0/16", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  /* A changed adapter is replaced (and the peer's SAs renegotiated). */
  mark = log->len;
  p.peer_extra_a = adapter_mk0_mtu;
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = {
      "detach b", "destroy mk0", "create mk0 queues=2 flags=1", "address mk0 203.0.113.1/32 mtu=1300",
      "attach b fds=100,101 flags=1", "policies 2", "route+ mk0 10.2.0.0/24", "route+ mk0 10.4.0.0/16", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  /* The peer leaves the config: its adapter goes. */
  mark = log->len;
  {
    g_autoptr (GError) error = NULL;
    ModikeConfig *cfg = modike_config_load_string ("<modike/>", "empty", &error);

    g_assert_no_error (error);
    g_assert_true (modike_ike_set_config (a->ike, cfg, &error));
    modike_config_free (a->cfg);
    a->cfg = cfg;
  }
  {
    static const char *const want[] = { "detach b", "destroy mk0", "policies 0", NULL };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 0);
  /* Back, without offloads from the OS this time; the engine frees it
   * before it stops the datapath. */
  os.no_offload = TRUE;
  p.peer_extra_a = "    <adapter name=\"mk1\"/>\n";
  p.policies_extra_a = NULL;
  mark = log->len;
  reload_a (a, &p, "reload");
  net_free (net);
  {
    static const char *const want[] = {
      "create mk1 queues=1 flags=1", "attach b fds=100 flags=0", "policies 1", "route+ mk1 10.2.0.0/24",
      "detach b", "destroy mk1", "stop", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 0);
  fake_dp_clear (&da);
}

static void
set_config_fails (Node *n, const char *xml, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (xml, n->name, &error);

  g_assert_no_error (error);
  g_assert_false (modike_ike_set_config (n->ike, cfg, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  if (strstr (error->message, text) == NULL || strstr (error->message, "peer b") == NULL)
    g_error ("\"%s\" does not name peer b and \"%s\"", error->message, text);
}

static void
test_adapters_need_plugins (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *with = NULL, *without = NULL;
  FakeDp dp;
  FakeOs os = { 0 };
  Net *net = net_new ();
  Node *n;

  without = config_xml (&p, TRUE);
  p.peer_extra_a = adapter_mk0;
  with = config_xml (&p, TRUE);
  fake_dp_init (&dp, log);
  os.log = log;

  n = node_alloc (net, "no-os", "192.0.2.2");
  fake_dp_register (n, &dp);
  set_config_fails (n, with, "OS adapter");
  node_free (n);
  n = node_alloc (net, "no-dp", "192.0.2.2");
  fake_os_register (n, &os);
  set_config_fails (n, with, "datapath");
  node_free (n);
  g_assert_cmpuint (os.live, ==, 0);

  /* The OS adapter fails: the config is refused, the running one stays. */
  fake_dp_clear (&dp);
  fake_dp_init (&dp, log);
  n = node_alloc (net, "fails", "192.0.2.2");
  fake_dp_register (n, &dp);
  fake_os_register (n, &os);
  node_configure (n, without);
  os.fail_create = TRUE;
  set_config_fails (n, with, "no tun for you");
  g_assert_true (n->ike->cfg == n->cfg);
  g_assert_cmpuint (os.live, ==, 0);
  g_assert_cmpuint (n->ike->adapters->len, ==, 0);
  node_free (n);
  net_free (net);
  fake_dp_clear (&dp);
}

static void
assert_prefixes (const ModikeAddrRange *r, const char *except, const char *const *want)
{
  ModikeAddr ex;
  g_autoptr (GArray) got = NULL;
  guint n = g_strv_length ((char **) want);

  if (except != NULL)
    g_assert_true (modike_addr_parse (except, 500, &ex, NULL));
  got = engine_range_to_prefixes (r, except != NULL ? &ex : NULL);
  g_assert_cmpuint (got->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      char buf[80];

      g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, i), buf, sizeof buf), ==, want[i]);
    }
}

static ModikeAddrRange
range_of (const char *from, const char *to)
{
  ModikeAddrRange r = { 0 };

  g_assert_true (modike_addr_parse (from, 0, &r.from, NULL));
  g_assert_true (modike_addr_parse (to, 0, &r.to, NULL));
  return r;
}

static void
test_adapter_prefixes (void)
{
  ModikeAddrRange r;
  ModikeAddr peer;
  g_autoptr (GArray) got = NULL;

  r = range_of ("10.3.0.1", "10.3.0.6");
  assert_prefixes (&r, NULL, (const char *const[]){ "10.3.0.1/32", "10.3.0.2/31", "10.3.0.4/31", "10.3.0.6/32", NULL });
  r = range_of ("0.0.0.0", "255.255.255.255");
  assert_prefixes (&r, NULL, (const char *const[]){ "0.0.0.0/0", NULL });
  assert_prefixes (&r, "255.255.255.255", (const char *const[]){ "0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3",
                                                                 "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
                                                                 "252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9",
                                                                 "255.128.0.0/10", "255.192.0.0/11",
                                                                 "255.224.0.0/12", "255.240.0.0/13",
                                                                 "255.248.0.0/14", "255.252.0.0/15",
                                                                 "255.254.0.0/16", "255.255.0.0/17",
                                                                 "255.255.128.0/18", "255.255.192.0/19",
                                                                 "255.255.224.0/20", "255.255.240.0/21",
                                                                 "255.255.248.0/22", "255.255.252.0/23",
                                                                 "255.255.254.0/24", "255.255.255.0/25",
                                                                 "255.255.255.128/26", "255.255.255.192/27",
                                                                 "255.255.255.224/28", "255.255.255.240/29",
                                                                 "255.255.255.248/30", "255.255.255.252/31",
                                                                 "255.255.255.254/32", NULL });
  r = range_of ("10.0.0.0", "10.0.0.255");
  assert_prefixes (&r, "10.0.0.0", (const char *const[]){ "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30",
                                                          "10.0.0.8/29", "10.0.0.16/28", "10.0.0.32/27",
                                                          "10.0.0.64/26", "10.0.0.128/25", NULL });
  /* The peer outside the range, or of the other family, changes nothing. */
  assert_prefixes (&r, "10.0.1.0", (const char *const[]){ "10.0.0.0/24", NULL });
  assert_prefixes (&r, "2001:db8::1", (const char *const[]){ "10.0.0.0/24", NULL });
  r = range_of ("10.0.0.1", "10.0.0.1");
  assert_prefixes (&r, NULL, (const char *const[]){ "10.0.0.1/32", NULL });
  assert_prefixes (&r, "10.0.0.1", (const char *const[]){ NULL });
  r = range_of ("2001:db8::", "2001:db8::ffff");
  assert_prefixes (&r, NULL, (const char *const[]){ "2001:db8::/112", NULL });
  r = range_of ("2001:db8::1", "2001:db8::2");
  assert_prefixes (&r, NULL, (const char *const[]){ "2001:db8::1/128", "2001:db8::2/128", NULL });
  /* "any": both families, less the peer: 32 IPv4 prefixes and ::/0. */
  memset (&r, 0, sizeof r);
  g_assert_true (modike_addr_parse ("192.0.2.1", 500, &peer, NULL));
  got = engine_range_to_prefixes (&r, &peer);
  g_assert_cmpuint (got->len, ==, 33);
  for (guint i = 0; i < got->len; i++)
    {
      const ModikePrefix *pre = &g_array_index (got, ModikePrefix, i);

      g_assert_false (modike_prefix_contains (pre, &peer));
    }
  {
    char buf[80];

    g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, 32), buf, sizeof buf), ==, "::/0");
    g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, 0), buf, sizeof buf), ==, "0.0.0.0/1");
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fsm/table", test_table);
  g_test_add_func ("/fsm/selectors", test_selectors);
  for (guint i = 0; i < G_N_ELEMENTS (establish_cases); i++)
    g_test_add_data_func (establish_cases[i].path, &establish_cases[i], test_establish);
  for (guint i = 0; i < G_N_ELEMENTS (algos); i++)
    {
      g_autofree char *path = g_strdup_printf ("/fsm/algorithms/%s-%s-%s/%s%s%s/pfs-%s", algos[i].encr, algos[i].hash,
                                               algos[i].group, algos[i].esp, algos[i].integ != NULL ? "-" : "",
                                               algos[i].integ != NULL ? algos[i].integ : "", algos[i].pfs);
      g_test_add_data_func (path, &algos[i], test_algorithms);
    }
  g_test_add_func ("/fsm/ipv6", test_ipv6);
  g_test_add_func ("/fsm/transport", test_transport);
  g_test_add_func ("/fsm/two-policies", test_two_policies);
  g_test_add_func ("/fsm/status", test_status);
  g_test_add_data_func ("/fsm/loss/main", GINT_TO_POINTER (FALSE), test_loss);
  g_test_add_data_func ("/fsm/loss/aggressive", GINT_TO_POINTER (TRUE), test_loss);
  g_test_add_data_func ("/fsm/duplicates/main", GINT_TO_POINTER (FALSE), test_duplicates);
  g_test_add_data_func ("/fsm/duplicates/aggressive", GINT_TO_POINTER (TRUE), test_duplicates);
  g_test_add_func ("/fsm/no-proposal/phase1", test_no_proposal);
  g_test_add_func ("/fsm/no-proposal/quick-mode", test_no_esp_proposal);
  g_test_add_data_func ("/fsm/wrong-psk/main", GINT_TO_POINTER (FALSE), test_wrong_psk);
  g_test_add_data_func ("/fsm/wrong-psk/aggressive", GINT_TO_POINTER (TRUE), test_wrong_psk);
  g_test_add_func ("/fsm/timeout", test_timeout);
  g_test_add_func ("/fsm/delete/ike", test_delete);
  g_test_add_func ("/fsm/delete/child", test_delete_child_only);
  g_test_add_func ("/fsm/initial-contact", test_initial_contact);
  g_test_add_func ("/fsm/lifetimes", test_lifetimes);
  g_test_add_func ("/fsm/digest-reject", test_digest_reject);
  g_test_add_func ("/fsm/garbage", test_garbage);
  g_test_add_func ("/fsm/reload", test_reload);
  g_test_add_func ("/fsm/aggressive/peer-by-id", test_am_peer_by_id);
  g_test_add_func ("/fsm/responder-lifetime", test_responder_lifetime);
  g_test_add_func ("/fsm/forged-informational", test_forged_info);
  g_test_add_func ("/fsm/simultaneous", test_simultaneous);
  g_test_add_data_func ("/fsm/plugin-hooks/main", GINT_TO_POINTER (FALSE), test_plugin_hooks);
  g_test_add_data_func ("/fsm/plugin-hooks/aggressive", GINT_TO_POINTER (TRUE), test_plugin_hooks);
  g_test_add_data_func ("/fsm/corruption/main", GINT_TO_POINTER (FALSE), test_corruption);
  g_test_add_data_func ("/fsm/corruption/aggressive", GINT_TO_POINTER (TRUE), test_corruption);
  g_test_add_func ("/fsm/datapath/sad-mirror", test_dp_sad_mirror);
  g_test_add_func ("/fsm/datapath/acquire/phase1", test_dp_acquire_phase1);
  g_test_add_func ("/fsm/datapath/acquire/quick-mode-from-thread", test_dp_acquire_quick_mode_thread);
  g_test_add_func ("/fsm/datapath/acquire/rate-limit", test_dp_acquire_rate_limit);
  g_test_add_func ("/fsm/datapath/expire/soft", test_dp_expire_soft);
  g_test_add_func ("/fsm/datapath/expire/hard", test_dp_expire_hard);
  g_test_add_func ("/fsm/datapath/refused", test_dp_refused);
  g_test_add_func ("/fsm/datapath/host-after-stop", test_dp_host_after_stop);
  g_test_add_func ("/fsm/datapath/ike-input", test_dp_ike_input);
  g_test_add_func ("/fsm/adapters/lifecycle", test_adapters);
  g_test_add_func ("/fsm/adapters/need-plugins", test_adapters_need_plugins);
  g_test_add_func ("/fsm/adapters/prefixes", test_adapter_prefixes);
  return g_test_run ();
}

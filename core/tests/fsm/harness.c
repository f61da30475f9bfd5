/* The fsm suite's harness (harness.h). */
#include "harness.h"

#include <glib/gstdio.h>

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

void
packet_free (Packet *p)
{
  g_bytes_unref (p->data);
  g_free (p);
}

static Node *
route (Net *net, const ModikeAddr *dst)
{
  for (guint i = 0; i < net->n_nodes; i++)
    {
      Node *n = net->nodes[i];

      if (n != NULL && modike_addr_equal_ip (&n->addr, dst))
        return n;
      for (guint j = 0; n != NULL && n->aliases != NULL && j < n->aliases->len; j++)
        if (modike_addr_equal_ip (&g_array_index (n->aliases, ModikeAddr, j), dst))
          return n;
    }
  return NULL;
}

static gboolean
env_send (gpointer env, const ModikeAddr *local, const ModikeAddr *remote, const guint8 *data, gsize len)
{
  Node *from = env;
  Net *net = from->net;
  guint n = ++net->sent;
  Packet *p;

  if (net->send_fails)
    return FALSE;
  p = g_new0 (Packet, 1);
  g_assert_cmpint (local->family, ==, remote->family);
  p->to = route (net, remote);
  p->dst = *remote;
  p->src = *local;
  if (local->port == 4500 && len == 1 && data[0] == 0xff)
    {
      /* A NAT keepalive (RFC 3948 2.3): the peer's socket swallows it. */
      net->keepalives++;
      net->keepalive_us = net->now_us;
      g_free (p);
      return TRUE;
    }
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

/* Delivers packets and fires timers (advancing the clock) until pred holds
 * or nothing is left within limit_ms. */
void
net_set_crypto_threads (Net *net, guint threads)
{
  net->crypto_threads = threads;
  for (guint i = 0; i < net->n_nodes; i++)
    if (net->nodes[i] != NULL)
      g_assert_true (modike_ike_set_crypto_threads (net->nodes[i]->ike, threads, NULL));
}

/* Results of the nodes' crypto jobs, waited for: TRUE if any ran. */
static gboolean
net_crypto_drain (Net *net)
{
  gboolean any = FALSE;

  for (guint i = 0; i < net->n_nodes; i++)
    {
      Node *n = net->nodes[i];

      if (n == NULL || n->hold_crypto || engine_crypto_in_flight (n->ike) == 0)
        continue;
      g_assert_true (engine_crypto_wait (n->ike, 10000));
      any = TRUE;
    }
  return any;
}

gboolean
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
      if (net_crypto_drain (net))
        continue;
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

void
net_fire_now (Net *net, guint id)
{
  for (guint i = 0; i < net->timers->len; i++)
    {
      Timer *t = g_ptr_array_index (net->timers, i);

      if (t->id == id)
        {
          t->due_us = net->now_us;
          return;
        }
    }
  g_assert_not_reached ();
}

/* ---- nodes and configs ---- */

Params
params_default (void)
{
  return (Params){
    .exchange = "main", .encr = "aes128", .hash = "sha256", .group = "modp2048",
    .psk_a = "testpsk", .psk_b = "testpsk", .pfs = "none",
    .esp = "aes128", .integ = "sha256", .mode = "tunnel",
    .p1_life = 28800, .p2_life = 3600, .interval = 1000, .tries = 3, .half_open = 60,
  };
}

char *
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
Node *
node_alloc (Net *net, const char *name, const char *addr)
{
  Node *n = g_new0 (Node, 1);
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (net->n_nodes, <, G_N_ELEMENTS (net->nodes));
  n->net = net;
  n->name = g_strdup (name);
  g_assert_true (modike_addr_parse (addr, 500, &n->addr, &error));
  n->env = (ModikeEnv){ n, env_now, env_timer_add, env_timer_remove, env_send };
  n->reg = modike_registry_new ();
  g_assert_true (modike_ike_register_core (n->reg, &error));
  g_assert_no_error (error);
  n->ike = modike_ike_new (&n->env, n->reg);
  modike_ike_set_observer (n->ike, &observer, n);
  g_assert_true (modike_ike_set_crypto_threads (n->ike, net->crypto_threads, NULL));
  net->nodes[net->n_nodes++] = n;
  return n;
}

void
node_configure (Node *n, const char *xml)
{
  g_autoptr (GError) error = NULL;

  n->cfg = modike_config_load_string (xml, n->name, &error);
  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (n->ike, n->cfg, &error));
  g_assert_no_error (error);
}

Node *
node_new_xml (Net *net, const char *name, const char *addr, const char *xml)
{
  Node *n = node_alloc (net, name, addr);

  node_configure (n, xml);
  return n;
}

Node *
node_new (Net *net, const char *name, const Params *p, gboolean is_a)
{
  g_autofree char *xml = config_xml (p, is_a);
  const char *addr = p->v6 ? (is_a ? "2001:db8::2" : "2001:db8::1") : (is_a ? "192.0.2.2" : "192.0.2.1");

  return node_new_xml (net, name, addr, xml);
}

void
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
  g_clear_pointer (&n->aliases, g_array_unref);
  g_clear_error (&n->p1_error);
  g_clear_error (&n->p2_error);
  g_free (n->name);
  g_free (n);
}

Net *
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

void
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

gboolean
pred_up (Net *net, gpointer user)
{
  UpWant *w = user;

  return modike_ike_count_sas (w->a->ike, TRUE) >= 1 && modike_ike_count_sas (w->b->ike, TRUE) >= 1 &&
         modike_sad_size (modike_ike_get_sad (w->a->ike)) == 2 * w->children &&
         modike_sad_size (modike_ike_get_sad (w->b->ike)) == 2 * w->children && g_queue_is_empty (&net->queue);
}

gboolean
run_until_up (Net *net, Node *a, Node *b, guint children, guint limit_ms)
{
  UpWant w = { a, b, children };

  return net_run (net, limit_ms, pred_up, &w);
}

ModikeIkeSa *
newest_sa_from (Node *n, const ModikeAddr *remote)
{
  ModikeIkeSa *found = NULL;

  for (guint k = 0; k < n->ike->sas->len; k++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (n->ike->sas, k);

      if (sa->dead || !modike_addr_equal_ip (&sa->remote, remote))
        continue;
      if (found == NULL || sa->serial > found->serial)
        found = sa;
    }
  return found;
}

ModikeIkeSa *
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

void
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

void
assert_range_equal (const ModikeAddrRange *x, const ModikeAddrRange *y)
{
  g_assert_true (modike_addr_equal_ip (&x->from, &y->from));
  g_assert_true (modike_addr_equal_ip (&x->to, &y->to));
}

/* Both ends agree: one IKE SA with the same cookies and algorithms; every
 * ESP SA of one end has its mirror at the other with the same keys. */
void
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

Net *
pair_new (const Params *p, Node **a, Node **b)
{
  Net *net = net_new ();

  *a = node_new (net, "a", p, TRUE);
  *b = node_new (net, "b", p, FALSE);
  return net;
}

/* A starts towards B; both come up with `children` ESP pairs each way. */
void
bring_up (Net *net, Node *a, Node *b, guint children)
{
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (net, a, b, children, 30000));
}

/* A pair from p with A's phase 1 under way. */
Net *
pair_start (const Params *p, Node **a, Node **b)
{
  Net *net = pair_new (p, a, b);

  g_assert_true (modike_ike_initiate ((*a)->ike, "b", NULL));
  return net;
}

/* A pair from p, brought up by A. */
Net *
pair_up (const Params *p, Node **a, Node **b, guint children)
{
  Net *net = pair_new (p, a, b);

  bring_up (net, *a, *b, children);
  return net;
}

/* Each end saw phase 1 come up p1 times and Quick Mode p2 times. */
void
assert_up_counts (Node *a, Node *b, guint p1, guint p2)
{
  g_assert_cmpuint (a->p1_up, ==, p1);
  g_assert_cmpuint (b->p1_up, ==, p1);
  g_assert_cmpuint (a->p2_up, ==, p2);
  g_assert_cmpuint (b->p2_up, ==, p2);
}

void
assert_no_failures (Node *a, Node *b)
{
  g_assert_cmpuint (a->p1_failed + b->p1_failed + a->p2_failed + b->p2_failed, ==, 0);
}

void
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

void
assert_no_sas (Node *n)
{
  g_assert_cmpuint (modike_ike_count_sas (n->ike, FALSE), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (n->ike)), ==, 0);
}

/* A takes a new config built from p; `name` labels its source. */
void
reload_node (Node *n, const Params *p, gboolean is_a, const char *name)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg = modike_config_load_string (xml, name, &error);

  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (n->ike, cfg, &error));
  g_assert_no_error (error);
  modike_config_free (n->cfg);
  n->cfg = cfg;
}

void
reload_a (Node *a, const Params *p, const char *name)
{
  reload_node (a, p, TRUE, name);
}

char *
cert_path (const char *name)
{
  char *path = g_test_build_filename (G_TEST_DIST, "vectors", "certs", name, NULL);

  /* git checks keys out 0644; the loader wants them private. */
  if (g_str_has_suffix (name, ".key"))
    g_assert_cmpint (g_chmod (path, 0600), ==, 0);
  return path;
}

char *
peer_id_text (ModikeIkeSa *sa)
{
  GBytes *id_b = sa->role == MODIKE_ROLE_INITIATOR ? sa->idr_b : sa->idi_b;
  g_autoptr (ModikeIdPayload) id = modike_id_payload_parse (g_bytes_get_data (id_b, NULL), g_bytes_get_size (id_b),
                                                            NULL);
  gsize len;
  const guint8 *d;

  g_assert_nonnull (id);
  d = g_bytes_get_data (id->data, &len);
  if (id->type == MODIKE_ID_DER_ASN1_DN)
    return modike_x509_dn_to_string (d, len);
  return modike_id_payload_to_string (id);
}

gpointer
node_load_plugin (Node *n, const ModikePluginDescriptor *desc)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, desc);
  g_autoptr (GError) error = NULL;

  g_assert_true (desc->init (pl, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
  return modike_plugin_get_data (pl);
}

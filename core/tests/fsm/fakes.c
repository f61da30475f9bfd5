/* Suite fsm: fake datapath and OS adapter plugins on a node's registry,
 * recording what the engine asks of them in one log (shared by the
 * datapath, adapter and plugin result tests). */
#include "harness.h"

/* ---- the datapath and virtual adapters: fake plugins on the node's
 * registry record what the engine asks of them ---- */

/* One log for both fakes, to check the order of their calls. */
void
fake_log (GPtrArray *log, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  g_ptr_array_add (log, g_strdup_vprintf (fmt, ap));
  va_end (ap);
}

const char *
fmt_prefix (const ModikePrefix *p, char *buf, gsize len)
{
  ModikeAddr a = p->net;
  char ab[MODIKE_ADDR_STRLEN];

  a.port = 0;
  g_snprintf (buf, len, "%s/%u", modike_addr_format (&a, ab, sizeof ab), p->plen);
  return buf;
}


char *
fake_dp_key (const ModikeSadEntry *e)
{
  if (e->dir == MODIKE_DIR_IN)
    return g_strdup_printf ("in:%08x", e->spi);
  return g_strdup_printf ("out:%08x/%u", e->spi, e->reqid);
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
  g_hash_table_insert (dp->sas, fake_dp_key (sa), modike_sad_entry_dup (sa));
  return TRUE;
}

/* The core names the SA in full (ABI 1.4): outbound by (spi, reqid). */
static void
fdp_sa_del_sa (gpointer user, const ModikeSadEntry *e)
{
  FakeDp *dp = user;
  g_autofree char *key = fake_dp_key (e);

  dp->sa_dels++;
  /* Only SAs it was given are taken back. */
  g_assert_true (g_hash_table_remove (dp->sas, key));
}

/* A datapath without sa_del_sa: the SPI alone (some outbound SA with it). */
static void
fdp_sa_del (gpointer user, ModikeDirection dir, guint32 spi)
{
  FakeDp *dp = user;
  GHashTableIter it;
  gpointer key, value;

  g_assert_true (dp->old_sa_ops);
  dp->sa_dels++;
  g_hash_table_iter_init (&it, dp->sas);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      const ModikeSadEntry *mine = value;

      if (mine->dir == dir && mine->spi == spi)
        {
          g_hash_table_iter_remove (&it);
          return;
        }
    }
  /* Only SAs it was given are taken back. */
  g_assert_not_reached ();
}

/* The peer moved: the copy takes the new endpoints (mirror checks see it). */
static void
fdp_sa_move (gpointer user, const ModikeSadEntry *e)
{
  FakeDp *dp = user;
  g_autofree char *key = fake_dp_key (e);
  ModikeSadEntry *mine = g_hash_table_lookup (dp->sas, key);
  char buf[MODIKE_ADDR_STRLEN];

  g_assert_nonnull (mine);
  mine->src = e->src;
  mine->dst = e->dst;
  mine->encap_sport = e->encap_sport;
  mine->encap_dport = e->encap_dport;
  fake_log (dp->log, "move %s %s port %u", key,
            modike_addr_format (e->dir == MODIKE_DIR_OUT ? &e->dst : &e->src, buf, sizeof buf),
            e->dir == MODIKE_DIR_OUT ? e->encap_dport : e->encap_sport);
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

/* One policy at a time: placed by (priority, seq) as the SPD orders it. */
static void
fdp_policy_add (gpointer user, ModikeSpdEntry *e)
{
  FakeDp *dp = user;
  guint k;

  dp->policy_adds++;
  if (dp->policies == NULL)
    dp->policies = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  for (k = dp->policies->len; k > 0; k--)
    {
      const ModikeSpdEntry *o = dp->policies->pdata[k - 1];

      g_assert_cmpuint (o->id, !=, e->id);
      if (o->priority < e->priority || (o->priority == e->priority && o->seq <= e->seq))
        break;
    }
  g_ptr_array_insert (dp->policies, (gint) k, e);
}

static void
fdp_policy_del (gpointer user, guint32 spd_id)
{
  FakeDp *dp = user;
  guint k;

  dp->policy_dels++;
  for (k = 0; dp->policies != NULL && k < dp->policies->len; k++)
    if (((ModikeSpdEntry *) dp->policies->pdata[k])->id == spd_id)
      break;
  /* Only policies it has are taken back. */
  g_assert_true (dp->policies != NULL && k < dp->policies->len);
  g_ptr_array_remove_index (dp->policies, k);
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

static void
fdp_sa_stats_sa (gpointer user, const ModikeSadEntry *e, ModikeSaStats *out)
{
  FakeDp *dp = user;
  g_autofree char *key = fake_dp_key (e);

  /* The core asks only about SAs it gave us. */
  g_assert_true (g_hash_table_contains (dp->sas, key));
  fdp_sa_stats (user, e->dir, e->spi, out);
}

static const ModikeDatapathOps fake_dp_ops = {
  .name = "fakedp",
  .start = fdp_start,
  .stop = fdp_stop,
  .sa_add = fdp_sa_add,
  .sa_del = fdp_sa_del,
  .sa_move = fdp_sa_move,
  .policies_set = fdp_policies_set,
  .policy_add = fdp_policy_add,
  .policy_del = fdp_policy_del,
  .adapter_attach = fdp_adapter_attach,
  .adapter_detach = fdp_adapter_detach,
  .socket_attach = fdp_socket_attach,
  .sa_stats = fdp_sa_stats,
  .sa_del_sa = fdp_sa_del_sa,
  .sa_stats_sa = fdp_sa_stats_sa,
};

static const ModikePluginDescriptor fake_dp_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakedp",
  .version = "0",
};

void
fake_dp_init (FakeDp *dp, GPtrArray *log)
{
  memset (dp, 0, sizeof *dp);
  dp->log = log;
  dp->sas = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) modike_sad_entry_free);
}

void
fake_dp_clear (FakeDp *dp)
{
  g_hash_table_destroy (dp->sas);
  g_clear_pointer (&dp->policies, g_ptr_array_unref);
}

void
fake_dp_register (Node *n, FakeDp *dp)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_dp_desc);
  g_autoptr (GError) error = NULL;
  ModikeDatapathOps old = fake_dp_ops; /* the registry copies it */

  g_assert_nonnull (pl);
  old.sa_del_sa = NULL;
  old.sa_stats_sa = NULL;
  g_assert_true (modike_register_datapath (pl, dp->old_sa_ops ? &old : &fake_dp_ops, dp, &error));
  g_assert_no_error (error);
}

/* Runs the datapath host calls queued to the main context. */
void
host_flush (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* The datapath holds exactly the SAD, keys included. */
void
fake_dp_assert_mirror (FakeDp *dp, Node *n)
{
  g_autoptr (GPtrArray) all = modike_sad_entries (modike_ike_get_sad (n->ike));

  g_assert_cmpuint (g_hash_table_size (dp->sas), ==, all->len);
  for (guint i = 0; i < all->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (all, i);
      g_autofree char *key = fake_dp_key (e);
      const ModikeSadEntry *m = g_hash_table_lookup (dp->sas, key);

      g_assert_nonnull (m);
      g_assert_cmpuint (m->reqid, ==, e->reqid);
      g_assert_cmpuint (m->spd_id, ==, e->spd_id);
      assert_secret_equal (m->enc_key, e->enc_key);
      assert_secret_equal (m->auth_key, e->auth_key);
    }
}


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

  if (a->os->fail_address)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "address refused");
      return FALSE;
    }
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

static gboolean
fos_set_dns (gpointer adapter, const ModikeAddr *servers, guint n_servers, const char *const *domains,
             GError **error)
{
  FakeAdapter *a = adapter;
  g_autoptr (GString) s = g_string_new (NULL);
  g_autofree char *dom = g_strjoinv (",", (char **) domains);

  for (guint i = 0; i < n_servers; i++)
    {
      char b[MODIKE_ADDR_STRLEN];
      ModikeAddr bare = servers[i];

      bare.port = 0;
      g_string_append_printf (s, "%s%s", i > 0 ? "," : "", modike_addr_format (&bare, b, sizeof b));
    }
  fake_log (a->log, "dns %s servers=%s domains=%s", a->name, s->str, dom);
  return TRUE;
}

static void
fos_clear_dns (gpointer adapter)
{
  FakeAdapter *a = adapter;

  fake_log (a->log, "dns- %s", a->name);
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
  .set_dns = fos_set_dns,
  .clear_dns = fos_clear_dns,
};


static const ModikePluginDescriptor fake_os_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakeos",
  .version = "0",
};

void
fake_os_register (Node *n, FakeOs *os)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_os_desc);
  g_autoptr (GError) error = NULL;
  ModikeOsAdapterOps ops = fake_os_ops;

  g_assert_nonnull (pl);
  /* Without DNS support, as an OS adapter of ABI 1.1 (the core copies ops). */
  if (os->no_dns)
    {
      ops.set_dns = NULL;
      ops.clear_dns = NULL;
    }
  g_assert_true (modike_register_os_adapter (pl, &ops, os, &error));
  g_assert_no_error (error);
}

/* A and B from params, with the fakes given (NULL: none) registered
 * before the config is applied. */
Net *
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

gboolean
log_has (GPtrArray *log, const char *line)
{
  for (guint i = 0; i < log->len; i++)
    if (g_strcmp0 (g_ptr_array_index (log, i), line) == 0)
      return TRUE;
  return FALSE;
}

guint
log_count (GPtrArray *log, guint from, const char *prefix)
{
  guint n = 0;

  for (guint i = from; i < log->len; i++)
    n += g_str_has_prefix (g_ptr_array_index (log, i), prefix);
  return n;
}

/* The log from `from` on equals `want` (NULL-terminated), in order. */
void
assert_log (GPtrArray *log, guint from, const char *const *want)
{
  guint n = g_strv_length ((char **) want);

  for (guint i = 0; i < log->len; i++)
    g_test_message ("log[%u] %s", i, (const char *) g_ptr_array_index (log, i));
  g_assert_cmpuint (log->len - from, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (g_ptr_array_index (log, from + i), ==, want[i]);
}

/* Policy templates and their instances. A template is a protect policy
 * with one side "virtual" (a mode config address): it never enters the
 * SPD. Its instances do, in its place in file order:
 *
 *   client  (local="virtual"):  per address of the peer's result (family):
 *           local = that address, remote = each result route within the
 *           template's remote (split include), or the template's remote
 *           (no routes of the address's family: full tunnel for it); each excluded network a BYPASS entry
 *           ahead of them.
 *   gateway (remote="virtual"): per client SA with a peer address:
 *           local = the template's local, remote = the client's address.
 *
 * An instance belongs to the SA that made it (its result or peer address)
 * and moves with that to a successor of the same client; a client's
 * instances serve only its own Quick Modes (engine_instance_usable).
 * Instances are recomputed whenever a result, a peer address or an SA
 * changes; entries that stay keep their SPD id. A gateway does that for
 * the one client that changed (its SAs hold its instances), never over
 * all clients: a client costs the same at 10 clients and at 100,000. */
#include "engine-private.h"

#include <string.h>

static void
instance_free (EngineInstance *inst)
{
  g_free (inst->name);
  g_free (inst);
}

/* A client's address as a key: the address bytes of its family. */
static guint
addr_hash (gconstpointer p)
{
  const ModikeAddr *a = p;
  guint h = (guint) a->family;

  for (gsize i = 0; i < modike_addr_len (a); i++)
    h = h * 31 + a->addr[i];
  return h;
}

static gboolean
addr_equal (gconstpointer a, gconstpointer b)
{
  return modike_addr_equal_ip (a, b);
}

void
engine_instances_init (ModikeIke *ike)
{
  ike->instances = g_ptr_array_new ();
  ike->instance_ids = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) instance_free);
  ike->instance_names = g_hash_table_new (g_str_hash, g_str_equal);
  ike->peer_addrs = g_hash_table_new (addr_hash, addr_equal);
}

void
engine_instances_free (ModikeIke *ike)
{
  g_clear_pointer (&ike->peer_addrs, g_hash_table_destroy);
  g_clear_pointer (&ike->instance_names, g_hash_table_destroy);
  g_clear_pointer (&ike->instance_ids, g_hash_table_destroy);
  g_clear_pointer (&ike->instances, g_ptr_array_unref);
}

guint
engine_policy_priority (guint index, gboolean protect_instance)
{
  return 2 * (index + 1) + (protect_instance ? 1 : 0);
}

/* ---- what the instances should be ---- */

typedef struct {
  ModikeSpdEntry *e;          /* NULL once in the SPD */
  ModikeIkeSa *sa;
  gboolean kept;              /* an instance of that name and entry exists */
} Want;

static void
want_free (Want *w)
{
  modike_spd_entry_free (w->e);
  g_free (w);
}

/* The instances to have, in the order they are made, and by name (a
 * gateway with many clients syncs often: no scans). */
typedef struct {
  GPtrArray *list;            /* Want*, owned */
  GHashTable *by_name;        /* char* (owned) -> Want* */
} Wants;

static void
wants_free (Wants *ws)
{
  g_hash_table_destroy (ws->by_name);
  g_ptr_array_unref (ws->list);
  g_free (ws);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Wants, wants_free)

static void
host_range (const ModikeAddr *a, ModikeAddrRange *out)
{
  memset (out, 0, sizeof *out);
  out->from.family = out->to.family = a->family;
  memcpy (out->from.addr, a->addr, modike_addr_len (a));
  out->to = out->from;
}

/* A selector side in `family`: "any" becomes every address of it; FALSE
 * if the side is of the other family. */
static gboolean
side_in_family (const ModikeAddrRange *sel, int family, ModikeAddrRange *out)
{
  memset (out, 0, sizeof *out);
  if (sel->from.family == 0)
    {
      out->from.family = out->to.family = family;
      memset (out->to.addr, 0xff, modike_addr_len (&out->to));
      return TRUE;
    }
  if (sel->from.family != family)
    return FALSE;
  *out = *sel;
  out->from.port = out->to.port = 0;
  return TRUE;
}

static gboolean
intersect (const ModikeAddrRange *a, const ModikeAddrRange *b, ModikeAddrRange *out)
{
  gsize len = modike_addr_len (&a->from);

  if (len == 0 || a->from.family != b->from.family)
    return FALSE;
  memset (out, 0, sizeof *out);
  out->from = memcmp (a->from.addr, b->from.addr, len) >= 0 ? a->from : b->from;
  out->to = memcmp (a->to.addr, b->to.addr, len) <= 0 ? a->to : b->to;
  return memcmp (out->from.addr, out->to.addr, len) <= 0;
}

/* "10.1.0.0/16" when the range is a prefix, else "a-b". */
static char *
range_text (const ModikeAddrRange *r)
{
  g_autoptr (GArray) pre = engine_range_to_prefixes (r, NULL);
  char a[MODIKE_ADDR_STRLEN], b[MODIKE_ADDR_STRLEN];
  ModikeAddr from = r->from, to = r->to;

  from.port = to.port = 0;
  if (pre->len == 1)
    return g_strdup_printf ("%s/%u", modike_addr_format (&from, a, sizeof a),
                            g_array_index (pre, ModikePrefix, 0).plen);
  return g_strdup_printf ("%s-%s", modike_addr_format (&from, a, sizeof a), modike_addr_format (&to, b, sizeof b));
}

/* An instance of template t: its copy with the selectors filled in. */
static void
want_add (Wants *want, const ModikeSpdEntry *t, guint index, char sep, ModikeSpdAction action,
          const ModikeAddrRange *local, const ModikeAddrRange *remote, ModikeIkeSa *sa)
{
  g_autofree char *what = range_text (remote);
  g_autofree char *name = g_strdup_printf ("%s%c%s", t->name, sep, what);
  ModikeSpdEntry *e;
  Want *w;

  if (g_hash_table_contains (want->by_name, name))
    return;
  e = modike_spd_entry_dup (t);
  g_free (e->name);
  e->name = g_steal_pointer (&name);
  e->virtual_side = MODIKE_VIRTUAL_NONE;
  e->action = action;
  e->local = *local;
  e->remote = *remote;
  e->priority = engine_policy_priority (index, action == MODIKE_SPD_PROTECT);
  if (action != MODIKE_SPD_PROTECT)
    {
      /* An excluded network is left alone whatever the traffic. */
      e->proto = 0;
      e->local_port = e->remote_port = (ModikePortRange) { 0, 65535 };
      g_array_set_size (e->proposals, 0);
    }
  w = g_new0 (Want, 1);
  w->e = e;
  w->sa = sa;
  g_ptr_array_add (want->list, w);
  g_hash_table_insert (want->by_name, g_strdup (e->name), w);
}

static const ModikePrefix *
result_address (const ModikeSaResult *r, int family)
{
  const ModikePrefix *p = family == AF_INET ? &r->addr4 : &r->addr6;

  return p->net.family != 0 ? p : NULL;
}

static const int families[] = { AF_INET, AF_INET6 };

static gboolean
has_route_of (const ModikeSaResult *r, int family)
{
  for (guint i = 0; i < r->routes->len; i++)
    if (g_array_index (r->routes, ModikePrefix, i).net.family == family)
      return TRUE;
  return FALSE;
}

static void
client_instances (Wants *want, const ModikeSpdEntry *t, guint index, const ModikeSaResult *r, ModikeIkeSa *sa)
{
  for (guint f = 0; f < G_N_ELEMENTS (families); f++)
    {
      const ModikePrefix *addr = result_address (r, families[f]);
      static const ModikeAddrRange any_family = { 0 };
      ModikeAddrRange local, trem, any, net, in;

      if (addr == NULL || !side_in_family (&t->remote, families[f], &trem))
        continue;
      host_range (&addr->net, &local);
      side_in_family (&any_family, families[f], &any);
      for (guint i = 0; i < r->excludes->len; i++)
        if (g_array_index (r->excludes, ModikePrefix, i).net.family == families[f] &&
            modike_addr_range_from_prefix (&g_array_index (r->excludes, ModikePrefix, i), &net))
          want_add (want, t, index, '!', MODIKE_SPD_BYPASS, &any, &net, sa);
      /* Per family: an address whose family got no network (an IPv4-only
       * split list with an IPv6 address) is a full tunnel for that family,
       * so its traffic is protected rather than sent outside. */
      if (!has_route_of (r, families[f]))
        {
          want_add (want, t, index, '@', MODIKE_SPD_PROTECT, &local, &trem, sa);
          continue;
        }
      for (guint i = 0; i < r->routes->len; i++)
        if (g_array_index (r->routes, ModikePrefix, i).net.family == families[f] &&
            modike_addr_range_from_prefix (&g_array_index (r->routes, ModikePrefix, i), &net) &&
            intersect (&net, &trem, &in))
          want_add (want, t, index, '@', MODIKE_SPD_PROTECT, &local, &in, sa);
    }
}

static const ModikePrefix *
peer_address (const ModikeIkeSa *sa, int family)
{
  const ModikePrefix *p = family == AF_INET ? &sa->peer_addr4 : &sa->peer_addr6;

  return p->net.family != 0 ? p : NULL;
}

/* The client's addresses are on sa; its instances belong to owner, the
 * SA that speaks for the client now (sa or its successor). */
static void
gateway_instances (Wants *want, const ModikeSpdEntry *t, guint index, const ModikeIkeSa *sa, ModikeIkeSa *owner)
{
  for (guint f = 0; f < G_N_ELEMENTS (families); f++)
    {
      const ModikePrefix *addr = peer_address (sa, families[f]);
      ModikeAddrRange local, remote;

      if (addr == NULL || !side_in_family (&t->local, families[f], &local))
        continue;
      host_range (&addr->net, &remote);
      want_add (want, t, index, '@', MODIKE_SPD_PROTECT, &local, &remote, owner);
    }
}

/* The client's current SA: sa or the successor that speaks for it now. */
static ModikeIkeSa *
current_sa (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);
  ModikeIkeSa *best = engine_best_established (sas, NULL);

  return best != NULL ? best : sa;
}

static Wants *
wants_new (void)
{
  Wants *want = g_new0 (Wants, 1);

  want->list = g_ptr_array_new_with_free_func ((GDestroyNotify) want_free);
  want->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return want;
}

/* The client templates' instances (from the results applied now). */
static Wants *
wanted_client (ModikeIke *ike)
{
  Wants *want = wants_new ();

  for (guint i = 0; ike->cfg != NULL && ike->cfg->policies != NULL && i < ike->cfg->policies->len; i++)
    {
      const ModikeSpdEntry *t = g_ptr_array_index (ike->cfg->policies, i);
      ModikeIkeSa *sa = NULL;
      const ModikeSaResult *r;

      if (t->virtual_side != MODIKE_VIRTUAL_LOCAL)
        continue;
      r = engine_adapter_result (ike, t->peer, &sa);
      if (r != NULL)
        client_instances (want, t, i, r, sa);
    }
  return want;
}

/* The gateway templates' instances of the clients of `scope`'s SAs. */
static Wants *
wanted_gateway (ModikeIke *ike, GPtrArray *scope)
{
  Wants *want = wants_new ();

  for (guint i = 0; ike->cfg != NULL && ike->cfg->policies != NULL && i < ike->cfg->policies->len; i++)
    {
      const ModikeSpdEntry *t = g_ptr_array_index (ike->cfg->policies, i);

      if (t->virtual_side != MODIKE_VIRTUAL_REMOTE)
        continue;
      for (guint k = 0; k < scope->len; k++)
        {
          ModikeIkeSa *sa = g_ptr_array_index (scope, k);

          if (!sa->dead && sa->state == SA_ESTABLISHED && g_strcmp0 (sa->peer_name, t->peer) == 0 &&
              (sa->peer_addr4.net.family != 0 || sa->peer_addr6.net.family != 0))
            gateway_instances (want, t, i, sa, current_sa (sa));
        }
    }
  return want;
}

/* ---- keeping the SPD in step ---- */

static gboolean
range_equal (const ModikeAddrRange *a, const ModikeAddrRange *b)
{
  return modike_addr_equal (&a->from, &b->from) && modike_addr_equal (&a->to, &b->to);
}

static gboolean
same_entry (const ModikeSpdEntry *a, const ModikeSpdEntry *b)
{
  return a->action == b->action && range_equal (&a->local, &b->local) && range_equal (&a->remote, &b->remote);
}

/* Children, acquires and Quick Modes of the policies in `gone`, on the
 * SAs of scope (the only ones an instance's client negotiates on). */
static void
forget (ModikeIke *ike, const GArray *gone, GPtrArray *scope)
{
  g_autoptr (GHashTable) map = g_hash_table_new (NULL, NULL);

  for (guint k = 0; k < gone->len; k++)
    {
      g_hash_table_insert (map, GUINT_TO_POINTER (g_array_index (gone, guint32, k)), NULL);
      g_hash_table_remove (ike->acquires, GUINT_TO_POINTER (g_array_index (gone, guint32, k)));
    }
  for (guint i = 0; i < scope->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (scope, i);

      for (guint j = sa->children->len; j-- > 0;)
        {
          EngineChild *c = g_ptr_array_index (sa->children, j);

          if (g_hash_table_contains (map, GUINT_TO_POINTER (c->spd_id)))
            engine_child_remove (c, TRUE);
        }
    }
  engine_policies_renumber (ike, &(EngineRenumber) { .map = map, .others_stay = TRUE }, scope);
}

/* Files inst with its owner: the client list, or its SA's own. */
static void
inst_file (ModikeIke *ike, EngineInstance *inst)
{
  if (!inst->gateway)
    g_ptr_array_add (ike->instances, inst);
  else
    {
      if (inst->sa->instances == NULL)
        inst->sa->instances = g_ptr_array_new ();
      g_ptr_array_add (inst->sa->instances, inst);
    }
}

static void
inst_unfile (ModikeIke *ike, EngineInstance *inst)
{
  if (!inst->gateway)
    g_ptr_array_remove (ike->instances, inst);
  else if (inst->sa->instances != NULL)
    {
      g_ptr_array_remove_fast (inst->sa->instances, inst);
      if (inst->sa->instances->len == 0)
        g_clear_pointer (&inst->sa->instances, g_ptr_array_unref);
    }
}

/* Makes the instances `have` (those of one scope: the client templates',
 * or one client's gateway ones) what `want` says. scope: the SAs whose
 * children and Quick Modes may use them. */
static void
apply (ModikeIke *ike, GPtrArray *have, Wants *want, gboolean gateway, GPtrArray *scope, gboolean push)
{
  g_autoptr (GArray) gone = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_autoptr (GArray) added = g_array_new (FALSE, FALSE, sizeof (guint32));

  for (guint i = 0; i < have->len; i++)
    {
      EngineInstance *inst = g_ptr_array_index (have, i);
      Want *w = g_hash_table_lookup (want->by_name, inst->name);

      if (w != NULL && !w->kept && same_entry (inst->entry, w->e))
        {
          w->kept = TRUE;
          if (inst->sa != w->sa)
            {
              inst_unfile (ike, inst);
              inst->sa = w->sa;
              inst_file (ike, inst);
            }
          continue;
        }
      engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "policy %s removed", inst->name);
      if (gateway)
        engine_adapters_instance_routes (ike, inst->entry, FALSE, push);
      inst_unfile (ike, inst);
      g_hash_table_remove (ike->instance_names, inst->name);
      modike_spd_remove (ike->spd, inst->spd_id);
      g_array_append_val (gone, inst->spd_id);
      /* Frees it. */
      g_hash_table_remove (ike->instance_ids, GUINT_TO_POINTER (inst->spd_id));
    }
  for (guint i = 0; i < want->list->len; i++)
    {
      Want *w = g_ptr_array_index (want->list, i);
      EngineInstance *inst;
      g_autofree char *l = NULL;
      g_autofree char *r = NULL;

      if (w->kept)
        continue;
      /* Another client's already (one client per address: a race of two
       * results); it stays theirs. */
      if (g_hash_table_contains (ike->instance_names, w->e->name))
        {
          ELOG_INFO (w->sa, NULL, "policy %s exists for another client: not made again", w->e->name);
          continue;
        }
      inst = g_new0 (EngineInstance, 1);
      l = range_text (&w->e->local);
      r = range_text (&w->e->remote);
      inst->name = g_strdup (w->e->name);
      inst->sa = w->sa;
      inst->gateway = gateway;
      ELOG_INFO (w->sa, NULL, "policy %s: %s %s === %s", inst->name,
                 w->e->action == MODIKE_SPD_PROTECT ? "protect" : "bypass", l, r);
      inst->entry = w->e;
      inst->spd_id = modike_spd_add (ike->spd, g_steal_pointer (&w->e));
      inst_file (ike, inst);
      g_hash_table_insert (ike->instance_ids, GUINT_TO_POINTER (inst->spd_id), inst);
      g_hash_table_insert (ike->instance_names, inst->name, inst);
      g_array_append_val (added, inst->spd_id);
      if (gateway)
        engine_adapters_instance_routes (ike, inst->entry, TRUE, push);
    }
  if (gone->len > 0)
    forget (ike, gone, scope);
  if (push && (gone->len > 0 || added->len > 0))
    {
      engine_dp_policies_update (ike, gone, added);
      /* Routes come from the client's instances only. */
      if (!gateway)
        engine_adapters_sync_routes (ike, ike->cfg);
    }
}

static void
client_sync (ModikeIke *ike, gboolean push)
{
  g_autoptr (Wants) want = wanted_client (ike);
  g_autoptr (GPtrArray) have = g_ptr_array_copy (ike->instances, NULL, NULL);

  apply (ike, have, want, FALSE, ike->sas, push);
}

/* One client's SAs: sa's peers, and sa itself when it is going. */
static GPtrArray *
client_scope (ModikeIkeSa *sa)
{
  GPtrArray *scope = engine_sa_peer_sas (sa);

  if (!g_ptr_array_find (scope, sa, NULL))
    g_ptr_array_add (scope, sa);
  return scope;
}

static void
gateway_sync (ModikeIkeSa *sa, gboolean push)
{
  ModikeIke *ike = sa->ike;
  g_autoptr (GPtrArray) scope = client_scope (sa);
  g_autoptr (Wants) want = wanted_gateway (ike, scope);
  g_autoptr (GPtrArray) have = g_ptr_array_new ();

  for (guint i = 0; i < scope->len; i++)
    {
      const ModikeIkeSa *o = g_ptr_array_index (scope, i);

      if (o->instances != NULL)
        g_ptr_array_extend (have, o->instances, NULL, NULL);
    }
  apply (ike, have, want, TRUE, scope, push);
}

void
engine_instances_sync (ModikeIke *ike)
{
  client_sync (ike, TRUE);
}

void
engine_instances_sync_client (ModikeIkeSa *sa)
{
  gateway_sync (sa, TRUE);
}

void
engine_instances_rebuild (ModikeIke *ike)
{
  /* The SPD they were in is gone already. */
  g_ptr_array_set_size (ike->instances, 0);
  for (guint i = 0; i < ike->sas->len; i++)
    g_clear_pointer (&((ModikeIkeSa *) g_ptr_array_index (ike->sas, i))->instances, g_ptr_array_unref);
  /* (None should be left on a dead SA; should one be, it must not point
   * at the instances freed below.) */
  for (guint i = 0; i < ike->dead_sas->len; i++)
    g_clear_pointer (&((ModikeIkeSa *) g_ptr_array_index (ike->dead_sas, i))->instances, g_ptr_array_unref);
  g_hash_table_remove_all (ike->instance_names);
  g_hash_table_remove_all (ike->instance_ids);
  engine_adapters_instances_reset (ike);
  client_sync (ike, FALSE);
  for (guint i = 0; i < ike->sas->len; i++)
    gateway_sync (g_ptr_array_index (ike->sas, i), FALSE);
}

const EngineInstance *
engine_instance_find (ModikeIke *ike, guint32 spd_id)
{
  return g_hash_table_lookup (ike->instance_ids, GUINT_TO_POINTER (spd_id));
}

gboolean
engine_instance_usable (ModikeIkeSa *sa, guint32 spd_id)
{
  const EngineInstance *inst = engine_instance_find (sa->ike, spd_id);
  g_autoptr (GPtrArray) sas = NULL;

  if (inst == NULL || inst->sa == sa)
    return TRUE;
  /* Another peer key is another client, no need to ask further. */
  if (sa->peer_key == NULL || g_strcmp0 (sa->peer_key, inst->sa->peer_key) != 0)
    return FALSE;
  /* The same client: sa.c's rule (its peer key, and its address or NAT). */
  sas = engine_sa_peer_sas (sa);
  return g_ptr_array_find (sas, inst->sa, NULL);
}

ModikeIkeSa *
engine_instance_sa (const EngineInstance *inst)
{
  ModikeIkeSa *sa = current_sa (inst->sa);

  return !sa->dead && sa->state == SA_ESTABLISHED ? sa : NULL;
}

/* sa's address of that family becomes p (NULL: none), in the index too. */
static void
peer_addr_set (ModikeIkeSa *sa, int family, const ModikePrefix *p)
{
  ModikePrefix *mine = family == AF_INET ? &sa->peer_addr4 : &sa->peer_addr6;

  if (mine->net.family != 0 && g_hash_table_lookup (sa->ike->peer_addrs, &mine->net) == sa)
    g_hash_table_remove (sa->ike->peer_addrs, &mine->net);
  memset (mine, 0, sizeof *mine);
  if (p == NULL)
    return;
  *mine = *p;
  mine->net.port = 0;
  g_hash_table_replace (sa->ike->peer_addrs, &mine->net, sa);
}

void
engine_instances_sa_gone (ModikeIkeSa *sa)
{
  if (sa->peer_addr4.net.family != 0 || sa->peer_addr6.net.family != 0)
    {
      g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);
      ModikeIkeSa *next = engine_best_established (sas, sa);

      /* Phase 1 rekeyed: the successor keeps the client's addresses
       * unless it has its own already. */
      if (next != NULL && next->peer_addr4.net.family == 0 && next->peer_addr6.net.family == 0)
        {
          for (guint f = 0; f < G_N_ELEMENTS (families); f++)
            if (peer_address (sa, families[f]) != NULL)
              {
                ModikePrefix p = *peer_address (sa, families[f]);

                peer_addr_set (sa, families[f], NULL);
                peer_addr_set (next, families[f], &p);
              }
          ELOG_INFO (next, NULL, "keeps the peer addresses of the replaced IKE SA");
        }
      /* Whatever it held is free for other clients now. */
      peer_addr_set (sa, AF_INET, NULL);
      peer_addr_set (sa, AF_INET6, NULL);
    }
  client_sync (sa->ike, TRUE);
  gateway_sync (sa, TRUE);
}

void
engine_instances_sa_free (ModikeIkeSa *sa)
{
  ModikeIke *ike = sa->ike;

  peer_addr_set (sa, AF_INET, NULL);
  peer_addr_set (sa, AF_INET6, NULL);
  /* None left after engine_instances_sa_gone; an engine going down frees
   * what is. */
  while (sa->instances != NULL)
    {
      EngineInstance *inst = g_ptr_array_index (sa->instances, sa->instances->len - 1);

      inst_unfile (ike, inst);
      g_hash_table_remove (ike->instance_names, inst->name);
      modike_spd_remove (ike->spd, inst->spd_id);
      g_hash_table_remove (ike->instance_ids, GUINT_TO_POINTER (inst->spd_id));
    }
}

static void
status_line (const ModikeIkeSa *sa, const EngineInstance *inst, GString *s)
{
  const ModikeSpdEntry *e = inst->entry;
  g_autofree char *l = range_text (&e->local);
  g_autofree char *r = range_text (&e->remote);

  g_string_append_printf (s, "  POLICY %s %s %s local=%s remote=%s\n", sa->peer_name != NULL ? sa->peer_name : "?",
                          e->name, e->action == MODIKE_SPD_PROTECT ? "protect" : "bypass", l, r);
}

void
engine_instances_status (const ModikeIkeSa *sa, GString *s)
{
  for (guint i = 0; i < sa->ike->instances->len; i++)
    {
      const EngineInstance *inst = g_ptr_array_index (sa->ike->instances, i);

      if (inst->sa == sa)
        status_line (sa, inst, s);
    }
  for (guint i = 0; sa->instances != NULL && i < sa->instances->len; i++)
    status_line (sa, g_ptr_array_index (sa->instances, i), s);
}

void
engine_instances_check_result (ModikeIkeSa *sa, const ModikeSaResult *r)
{
  ModikeIke *ike = sa->ike;

  for (guint i = 0; ike->cfg != NULL && i < ike->cfg->policies->len; i++)
    {
      const ModikeSpdEntry *t = g_ptr_array_index (ike->cfg->policies, i);

      if (t->virtual_side != MODIKE_VIRTUAL_LOCAL || g_strcmp0 (t->peer, sa->peer_name) != 0)
        continue;
      for (guint k = 0; k < r->routes->len; k++)
        {
          const ModikePrefix *p = &g_array_index (r->routes, ModikePrefix, k);
          ModikeAddrRange net, trem, in;
          gboolean some;
          g_autofree char *text = NULL;

          if (result_address (r, p->net.family) == NULL || !modike_addr_range_from_prefix (p, &net))
            continue;
          some = side_in_family (&t->remote, p->net.family, &trem) && intersect (&net, &trem, &in);
          if (some && range_equal (&in, &net))
            continue;
          text = range_text (&net);
          ELOG_MSG (sa, NULL, "policy %s: route %s lies %s its remote selector: that part is not protected", t->name,
                    text, some ? "partly outside" : "outside");
        }
    }
}

/* ---- the gateway's side of mode config (sa-result.h) ---- */

gboolean
modike_ike_sa_set_peer_address (ModikeIkeSa *sa, const ModikePrefix *addr, GError **error)
{
  ModikeIke *ike;
  gsize len;
  g_autoptr (GPtrArray) mine = NULL;
  ModikeIkeSa *holder;

  g_return_val_if_fail (sa != NULL && addr != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  ike = sa->ike;
  len = modike_addr_len (&addr->net);
  if (len == 0 || addr->plen != len * 8)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: a peer address is a host prefix",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      return FALSE;
    }
  if (sa->dead || sa->peer_name == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: the IKE SA is gone",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      return FALSE;
    }
  /* One client per address: another's instance would take its traffic. */
  mine = client_scope (sa);
  holder = g_hash_table_lookup (ike->peer_addrs, &addr->net);
  if (holder != NULL && !holder->dead && !g_ptr_array_find (mine, holder, NULL))
    {
      char buf[MODIKE_ADDR_STRLEN];
      ModikeAddr bare = addr->net;

      bare.port = 0;
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: address %s is another client's",
                   sa->peer_name, modike_addr_format (&bare, buf, sizeof buf));
      return FALSE;
    }
  /* The client has one address per family: its other SAs (one being
   * replaced) give theirs up. */
  for (guint i = 0; i < mine->len; i++)
    peer_addr_set (g_ptr_array_index (mine, i), addr->net.family, NULL);
  peer_addr_set (sa, addr->net.family, addr);
  gateway_sync (sa, TRUE);
  return TRUE;
}

void
modike_ike_sa_clear_peer_addresses (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = NULL;

  g_return_if_fail (sa != NULL);
  /* The client's, whichever of its SAs holds them. */
  sas = client_scope (sa);
  for (guint i = 0; i < sas->len; i++)
    {
      peer_addr_set (g_ptr_array_index (sas, i), AF_INET, NULL);
      peer_addr_set (g_ptr_array_index (sas, i), AF_INET6, NULL);
    }
  gateway_sync (sa, TRUE);
}

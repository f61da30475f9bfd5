/* The registry: everything plugins (and the core, as the pseudo-plugin
 * "core") contribute. Every entry carries its owner so that one plugin's
 * registrations can be undone as a whole; exclusive claims fail naming
 * both owners and the thing. */
#define G_LOG_DOMAIN "modike"

#include "registry-private.h"

#include <modike/log.h>

#include <libxml/parser.h>
#include <string.h>

struct _ModikePlugin {
  ModikeRegistry *reg;
  const ModikePluginDescriptor *desc;
  gpointer data;
  GDestroyNotify destroy;
  GError *refused;  /* first registration we refused (see loader.c) */
};

typedef struct {
  ModikePlugin *owner;
  guint8 type;
  char *name;
  GArray *rows;     /* ModikeFsmRow, copied */
} ExchangeReg;

typedef struct {
  ModikePayloadClaim claim;
  GArray *points;   /* ModikeMsgPoint */
} PayloadReg;

typedef struct {
  ModikeBuilderReg b;
  ModikeMsgPoint point;
} BuilderEntry;

typedef struct {
  ModikePlugin *owner;
  guint16 type;
  ModikeNotifyFunc fn;
  gpointer user;
} NotifyReg;

typedef struct {
  ModikePlugin *owner;
  char *element;
  char *fragment;
  ModikeConfigFunc apply;
  gpointer user;
} SectionReg;

typedef struct {
  ModikePlugin *owner;
  guint16 port;
  guint flags;
} PortReg;

typedef struct {
  ModikePlugin *owner;
  ModikeEventType ev;
  ModikeEventFunc fn;
  gpointer user;
} EventReg;

/* Encapsulation hook, datapath, OS adapter: one of each at most. */
typedef struct {
  ModikePlugin *owner;  /* NULL: unclaimed */
  gpointer ops;         /* our copy of the ops struct */
  gpointer user;
} SingleReg;

/* Packet-path hooks: a function and its user data. */
typedef struct {
  ModikePlugin *owner;
  gpointer fn;
  gpointer user;
} HookReg;

struct _ModikeRegistry {
  ModikePlugin *core;
  gboolean check_only;   /* modiked --check: sections are validated, not put to work */
  GPtrArray *plugins;    /* ModikePlugin*, owned; the core first */
  GPtrArray *exchanges;  /* ExchangeReg* */
  GPtrArray *payloads;   /* PayloadReg* */
  GPtrArray *builders;   /* BuilderEntry* */
  GPtrArray *vids;       /* ModikeVendorIdReg* */
  GPtrArray *notifies;   /* NotifyReg* */
  GPtrArray *sections;   /* SectionReg* */
  GPtrArray *ports;      /* PortReg* */
  GPtrArray *events;     /* EventReg* */
  SingleReg encap, datapath, os_adapter;
  GPtrArray *auth_methods; /* ModikeAuthMethodReg* */
  GPtrArray *attributes;   /* ModikeAttrClaim* */
  GPtrArray *transactions; /* TransactionReg* */
  GPtrArray *rx_hooks;   /* HookReg*: run in registration order */
  GPtrArray *start_hooks; /* HookReg*: engine start, in registration order */
  HookReg tx_hook;       /* one at most (owner NULL: none) */
  /* (exchange << 8 | msg_no) -> GPtrArray of claims / builders, borrowed
   * from the lists above; rebuilt whenever those change. */
  GHashTable *payload_index;
  GHashTable *builder_index;
  GPtrArray *empty;      /* returned when nothing is registered at a point */
  GPtrArray *counters;   /* HookReg*: modike_register_counters, in load order */
};

static const ModikePluginDescriptor core_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "core",
  .version = "builtin",
  .description = "the core exchanges",
};

/* Config elements of the core schema and the IKE port the daemon always
 * has: a plugin claiming them would collide with the core. */
static const char *const core_sections[] = { "daemon", "peer", "policy", NULL };
#define CORE_PORT 500

G_DEFINE_QUARK (modike-registry-error-quark, modike_registry_error)

/* ---- Names for messages ---- */

/* The codec's names; the number is printed next to them, so a value
 * without a name needs no more than a marker. */
static const char *
payload_name (guint8 type)
{
  const char *name = modike_payload_name (type);

  return name != NULL ? name : "unknown";
}

static const char *
notify_name (guint16 type)
{
  const char *name = modike_notify_name (type);

  return name != NULL ? name : "unknown";
}

/* ---- Errors ---- */

static void
remember_refusal (ModikePlugin *plugin, const GError *e)
{
  if (plugin->refused == NULL)
    plugin->refused = g_error_copy (e);
}

static gboolean G_GNUC_PRINTF (4, 5)
refuse (ModikePlugin *plugin, ModikeRegistryError code, GError **error, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *what = NULL;
  GError *e;

  va_start (ap, fmt);
  what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  e = g_error_new (MODIKE_REGISTRY_ERROR, code, "plugin '%s' %s", modike_plugin_get_name (plugin), what);
  remember_refusal (plugin, e);
  g_propagate_error (error, e);
  return FALSE;
}

#define CONFLICT(plugin, error, holder, fmt, ...)                                          \
  refuse ((plugin), MODIKE_REGISTRY_ERROR_CONFLICT, (error), "claims " fmt " already claimed by '%s'", \
          __VA_ARGS__, modike_plugin_get_name (holder))
#define INVALID(plugin, error, fmt, ...) \
  refuse ((plugin), MODIKE_REGISTRY_ERROR_INVALID, (error), fmt, __VA_ARGS__)

/* ---- Plugins ---- */

const char *
modike_plugin_get_name (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->desc->name;
}

void
modike_plugin_set_data (ModikePlugin *plugin, gpointer data, GDestroyNotify destroy)
{
  gpointer old = plugin != NULL ? plugin->data : NULL;
  GDestroyNotify old_destroy = plugin != NULL ? plugin->destroy : NULL;

  g_return_if_fail (plugin != NULL);
  /* Store first: the old data's destroy may look at the plugin. */
  plugin->data = data;
  plugin->destroy = destroy;
  if (old_destroy != NULL && old != NULL && old != data)
    old_destroy (old);
}

gpointer
modike_plugin_get_data (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->data;
}

const ModikePluginDescriptor *
modike_plugin_get_descriptor (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->desc;
}

ModikeRegistry *
modike_plugin_get_registry (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->reg;
}

const GError *
modike_plugin_get_refusal (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, NULL);
  return plugin->refused;
}

static void
plugin_free (ModikePlugin *plugin)
{
  modike_plugin_set_data (plugin, NULL, NULL);
  g_clear_error (&plugin->refused);
  g_free (plugin);
}

static ModikePlugin *
plugin_new (ModikeRegistry *reg, const ModikePluginDescriptor *desc)
{
  ModikePlugin *plugin = g_new0 (ModikePlugin, 1);

  plugin->reg = reg;
  plugin->desc = desc;
  g_ptr_array_add (reg->plugins, plugin);
  return plugin;
}

/* ---- Entries ---- */

static void
exchange_reg_free (ExchangeReg *x)
{
  g_free (x->name);
  g_array_unref (x->rows);
  g_free (x);
}

static void
payload_reg_free (PayloadReg *p)
{
  g_array_unref (p->points);
  g_free (p);
}

static void
vid_reg_free (ModikeVendorIdReg *v)
{
  g_free (v->name);
  g_bytes_unref (v->vid);
  g_free (v);
}

static void
section_reg_free (SectionReg *s)
{
  g_free (s->element);
  g_free (s->fragment);
  g_free (s);
}

static void
auth_method_reg_free (ModikeAuthMethodReg *m)
{
  g_free (m->name);
  g_free (m);
}

static void
attr_claim_free (ModikeAttrClaim *c)
{
  g_free (c->name);
  g_free (c);
}

static guint
point_key (guint8 exchange, guint8 msg_no)
{
  return (guint) exchange << 8 | msg_no;
}

static GPtrArray *
index_slot (GHashTable *index, guint key)
{
  GPtrArray *slot = g_hash_table_lookup (index, GUINT_TO_POINTER (key));

  if (slot == NULL)
    {
      slot = g_ptr_array_new ();
      g_hash_table_insert (index, GUINT_TO_POINTER (key), slot);
    }
  return slot;
}

static void
rebuild_indexes (ModikeRegistry *reg)
{
  g_hash_table_remove_all (reg->payload_index);
  for (guint i = 0; i < reg->payloads->len; i++)
    {
      PayloadReg *p = g_ptr_array_index (reg->payloads, i);

      for (guint j = 0; j < p->points->len; j++)
        {
          const ModikeMsgPoint *pt = &g_array_index (p->points, ModikeMsgPoint, j);

          g_ptr_array_add (index_slot (reg->payload_index, point_key (pt->exchange, pt->msg_no)), &p->claim);
        }
    }
  g_hash_table_remove_all (reg->builder_index);
  for (guint i = 0; i < reg->builders->len; i++)
    {
      BuilderEntry *b = g_ptr_array_index (reg->builders, i);

      g_ptr_array_add (index_slot (reg->builder_index, point_key (b->point.exchange, b->point.msg_no)), &b->b);
    }
}

ModikeRegistry *
modike_registry_new (void)
{
  ModikeRegistry *reg = g_new0 (ModikeRegistry, 1);

  reg->plugins = g_ptr_array_new_with_free_func ((GDestroyNotify) plugin_free);
  reg->exchanges = g_ptr_array_new_with_free_func ((GDestroyNotify) exchange_reg_free);
  reg->payloads = g_ptr_array_new_with_free_func ((GDestroyNotify) payload_reg_free);
  reg->builders = g_ptr_array_new_with_free_func (g_free);
  reg->vids = g_ptr_array_new_with_free_func ((GDestroyNotify) vid_reg_free);
  reg->notifies = g_ptr_array_new_with_free_func (g_free);
  reg->sections = g_ptr_array_new_with_free_func ((GDestroyNotify) section_reg_free);
  reg->ports = g_ptr_array_new_with_free_func (g_free);
  reg->events = g_ptr_array_new_with_free_func (g_free);
  reg->rx_hooks = g_ptr_array_new_with_free_func (g_free);
  reg->start_hooks = g_ptr_array_new_with_free_func (g_free);
  reg->counters = g_ptr_array_new_with_free_func (g_free);
  reg->payload_index = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                              (GDestroyNotify) g_ptr_array_unref);
  reg->builder_index = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                              (GDestroyNotify) g_ptr_array_unref);
  reg->empty = g_ptr_array_new ();
  reg->auth_methods = g_ptr_array_new_with_free_func ((GDestroyNotify) auth_method_reg_free);
  reg->attributes = g_ptr_array_new_with_free_func ((GDestroyNotify) attr_claim_free);
  reg->transactions = g_ptr_array_new_with_free_func (g_free);
  reg->core = plugin_new (reg, &core_descriptor);
  return reg;
}

static void
single_clear (SingleReg *s)
{
  g_clear_pointer (&s->ops, g_free);
  s->owner = NULL;
  s->user = NULL;
}

void
modike_registry_free (ModikeRegistry *reg)
{
  if (reg == NULL)
    return;
  g_ptr_array_unref (reg->exchanges);
  g_ptr_array_unref (reg->payloads);
  g_ptr_array_unref (reg->builders);
  g_ptr_array_unref (reg->vids);
  g_ptr_array_unref (reg->notifies);
  g_ptr_array_unref (reg->sections);
  g_ptr_array_unref (reg->ports);
  g_ptr_array_unref (reg->events);
  g_ptr_array_unref (reg->rx_hooks);
  g_ptr_array_unref (reg->start_hooks);
  g_ptr_array_unref (reg->counters);
  single_clear (&reg->encap);
  single_clear (&reg->datapath);
  single_clear (&reg->os_adapter);
  g_hash_table_unref (reg->payload_index);
  g_hash_table_unref (reg->builder_index);
  g_ptr_array_unref (reg->empty);
  g_ptr_array_unref (reg->auth_methods);
  g_ptr_array_unref (reg->attributes);
  g_ptr_array_unref (reg->transactions);
  /* Last: plugin data may be referenced by the entries' user pointers. */
  g_ptr_array_unref (reg->plugins);
  g_free (reg);
}

ModikePlugin *
modike_registry_core_plugin (ModikeRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, NULL);
  return reg->core;
}

ModikePlugin *
modike_registry_add_plugin (ModikeRegistry *reg, const ModikePluginDescriptor *desc)
{
  g_return_val_if_fail (reg != NULL, NULL);
  g_return_val_if_fail (desc != NULL && desc->name != NULL, NULL);
  return plugin_new (reg, desc);
}

/* Removes every element of `list` (whose structs start with the owner
 * pointer) that belongs to `owner`. */
static void
drop_owned (GPtrArray *list, ModikePlugin *owner)
{
  for (guint i = list->len; i > 0; i--)
    {
      ModikePlugin **entry_owner = g_ptr_array_index (list, i - 1);

      if (*entry_owner == owner)
        g_ptr_array_remove_index (list, i - 1);
    }
}

void
modike_registry_remove_plugin (ModikeRegistry *reg, ModikePlugin *plugin)
{
  g_return_if_fail (reg != NULL && plugin != NULL && plugin->reg == reg);

  G_STATIC_ASSERT (G_STRUCT_OFFSET (ExchangeReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (PayloadReg, claim) == 0 && G_STRUCT_OFFSET (ModikePayloadClaim, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (BuilderEntry, b) == 0 && G_STRUCT_OFFSET (ModikeBuilderReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (ModikeVendorIdReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (NotifyReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (SectionReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (PortReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (EventReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (ModikeAuthMethodReg, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (ModikeAttrClaim, owner) == 0);
  G_STATIC_ASSERT (G_STRUCT_OFFSET (HookReg, owner) == 0);

  drop_owned (reg->exchanges, plugin);
  drop_owned (reg->payloads, plugin);
  drop_owned (reg->builders, plugin);
  drop_owned (reg->vids, plugin);
  drop_owned (reg->notifies, plugin);
  drop_owned (reg->sections, plugin);
  drop_owned (reg->ports, plugin);
  drop_owned (reg->events, plugin);
  drop_owned (reg->auth_methods, plugin);
  drop_owned (reg->attributes, plugin);
  drop_owned (reg->transactions, plugin);
  drop_owned (reg->rx_hooks, plugin);
  drop_owned (reg->start_hooks, plugin);
  drop_owned (reg->counters, plugin);
  if (reg->tx_hook.owner == plugin)
    memset (&reg->tx_hook, 0, sizeof reg->tx_hook);
  if (reg->encap.owner == plugin)
    single_clear (&reg->encap);
  if (reg->datapath.owner == plugin)
    single_clear (&reg->datapath);
  if (reg->os_adapter.owner == plugin)
    single_clear (&reg->os_adapter);
  rebuild_indexes (reg);

  /* The core's handle lives as long as the registry. */
  if (plugin == reg->core)
    g_clear_error (&plugin->refused);
  else
    g_ptr_array_remove (reg->plugins, plugin);
}

/* ---- Exchanges and the state table ---- */

static const ExchangeReg *
find_exchange (const ModikeRegistry *reg, guint8 type)
{
  for (guint i = 0; i < reg->exchanges->len; i++)
    {
      const ExchangeReg *x = g_ptr_array_index (reg->exchanges, i);

      if (x->type == type)
        return x;
    }
  return NULL;
}

static gboolean
row_is_terminal (const ModikeFsmRow *row)
{
  return (row->flags & (MODIKE_ROW_DONE | MODIKE_ROW_P1_DONE)) != 0;
}

/* The consistency rules of one exchange's rows; the message names the
 * owner, the exchange and the row. */
static gboolean
check_rows (const char *owner, guint8 type, const char *xname, const ModikeFsmRow *rows, gsize n,
            GError **error)
{
  const guint64 known_flags = MODIKE_ROW_ENCRYPTED | MODIKE_ROW_PLAIN | MODIKE_ROW_START
                              | MODIKE_ROW_P1_DONE | MODIKE_ROW_DONE | MODIKE_ROW_INITIATE | MODIKE_ROW_HASH;

  for (gsize i = 0; i < n; i++)
    {
      const ModikeFsmRow *r = &rows[i];
      g_autofree char *rname = r->name != NULL ? g_strdup_printf ("'%s'", r->name)
                                               : g_strdup_printf ("#%" G_GSIZE_FORMAT, i);
      const char *problem = NULL;
      g_autofree char *detail = NULL;

      if (r->exchange != type)
        detail = g_strdup_printf ("is for exchange %u", r->exchange);
      else if (r->role != MODIKE_ROLE_INITIATOR && r->role != MODIKE_ROLE_RESPONDER)
        detail = g_strdup_printf ("has an invalid role %u", r->role);
      else if ((r->flags & ~known_flags) != 0)
        detail = g_strdup_printf ("has unknown flags 0x%x", r->flags);
      else if (((r->flags & MODIKE_ROW_INITIATE) != 0) != (r->msg_no == 0))
        problem = "must have message number 0 exactly when it is an initiate row";
      else if ((r->flags & MODIKE_ROW_INITIATE) && (r->flags & MODIKE_ROW_START))
        problem = "cannot be both an initiate and a start row";
      else if ((r->flags & MODIKE_ROW_START) && r->from != 0)
        detail = g_strdup_printf ("is a start row but has from-state %u (must be 0)", r->from);
      else if ((r->flags & MODIKE_ROW_ENCRYPTED) && (r->flags & MODIKE_ROW_PLAIN))
        problem = "requires the message both encrypted and plain";
      else if ((r->flags & MODIKE_ROW_HASH) && !(r->flags & (MODIKE_ROW_ENCRYPTED | MODIKE_ROW_INITIATE)))
        problem = "carries a HASH but does not require the message encrypted";
      else if ((r->required & r->optional) != 0)
        detail = g_strdup_printf ("lists payload bits 0x%" G_GINT64_MODIFIER "x as both required and optional",
                                  r->required & r->optional);
      else if ((r->repeatable & ~(r->required | r->optional)) != 0)
        detail = g_strdup_printf ("marks payload bits 0x%" G_GINT64_MODIFIER "x repeatable that it does not allow",
                                  r->repeatable & ~(r->required | r->optional));
      else if (!row_is_terminal (r))
        {
          gboolean known = FALSE;

          for (gsize j = 0; j < n && !known; j++)
            known = rows[j].from == r->next;
          if (r->next == 0)
            problem = "goes to state 0 but is not terminal (DONE or P1_DONE)";
          else if (!known)
            detail = g_strdup_printf ("goes to state %u, which no row starts from, and is not terminal", r->next);
        }

      for (gsize j = 0; j < i && problem == NULL && detail == NULL; j++)
        {
          const ModikeFsmRow *o = &rows[j];

          if (o->from == r->from && o->msg_no == r->msg_no && o->role == r->role)
            detail = g_strdup_printf ("has the same key (from %u, message %u, role %u) as row '%s'",
                                      r->from, r->msg_no, r->role, o->name != NULL ? o->name : "?");
        }

      if (problem != NULL || detail != NULL)
        {
          g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                       "plugin '%s': exchange %u (%s): row %s %s", owner, type, xname, rname,
                       problem != NULL ? problem : detail);
          return FALSE;
        }
    }
  return TRUE;
}

/* A payload type claimed at a point must not be one the row there already
 * lists: the claim's handler and the row's handler would both own it. */
static const ModikePayloadClaim *
claim_overlapping_row (const ModikeRegistry *reg, const ModikeFsmRow *row)
{
  GPtrArray *claims;

  if (row->msg_no == 0)
    return NULL;
  claims = g_hash_table_lookup (reg->payload_index, GUINT_TO_POINTER (point_key (row->exchange, row->msg_no)));
  for (guint i = 0; claims != NULL && i < claims->len; i++)
    {
      const ModikePayloadClaim *c = g_ptr_array_index (claims, i);
      guint bit = modike_payload_bit (c->type);

      if (bit != MODIKE_PAYLOAD_BIT_OTHER && ((row->required | row->optional) & (G_GUINT64_CONSTANT (1) << bit)) != 0)
        return c;
    }
  return NULL;
}

gboolean
modike_register_exchange (ModikePlugin *plugin, guint8 exchange, const char *name,
                          const ModikeFsmRow *rows, gsize n_rows, GError **error)
{
  ModikeRegistry *reg;
  const ExchangeReg *held;
  ExchangeReg *x;
  g_autoptr (GError) local = NULL;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (name == NULL)
    name = "unnamed";
  if ((held = find_exchange (reg, exchange)) != NULL)
    return CONFLICT (plugin, error, held->owner, "exchange type %u (%s)", exchange, held->name);
  if (exchange == MODIKE_EX_NONE)
    return INVALID (plugin, error, "registers exchange type %u (%s), which is reserved", exchange, name);
  if (rows == NULL || n_rows == 0)
    return INVALID (plugin, error, "registers exchange type %u (%s) without rows", exchange, name);
  if (!check_rows (modike_plugin_get_name (plugin), exchange, name, rows, n_rows, &local))
    {
      remember_refusal (plugin, local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  for (gsize i = 0; i < n_rows; i++)
    {
      const ModikePayloadClaim *c = claim_overlapping_row (reg, &rows[i]);

      if (c != NULL)
        return refuse (plugin, MODIKE_REGISTRY_ERROR_CONFLICT, error,
                       "lists payload type %u (%s) in row '%s' of exchange %u (%s), which '%s' claims at that message",
                       c->type, payload_name (c->type), rows[i].name != NULL ? rows[i].name : "?", exchange, name,
                       modike_plugin_get_name (c->owner));
    }

  x = g_new0 (ExchangeReg, 1);
  x->owner = plugin;
  x->type = exchange;
  x->name = g_strdup (name);
  x->rows = g_array_sized_new (FALSE, FALSE, sizeof (ModikeFsmRow), n_rows);
  g_array_append_vals (x->rows, rows, n_rows);
  g_ptr_array_add (reg->exchanges, x);
  g_debug ("plugin '%s' registered exchange %u (%s) with %" G_GSIZE_FORMAT " rows",
           modike_plugin_get_name (plugin), exchange, name, n_rows);
  return TRUE;
}

const ModikeFsmRow *
modike_registry_find_row (const ModikeRegistry *reg, guint8 exchange, guint from_state, guint8 msg_no,
                          ModikeRole role)
{
  const ExchangeReg *x;

  g_return_val_if_fail (reg != NULL, NULL);
  if ((x = find_exchange (reg, exchange)) == NULL)
    return NULL;
  for (guint i = 0; i < x->rows->len; i++)
    {
      const ModikeFsmRow *r = &g_array_index (x->rows, ModikeFsmRow, i);

      if (r->from == from_state && r->msg_no == msg_no && r->role == (guint8) role)
        return r;
    }
  return NULL;
}

GPtrArray *
modike_registry_rows (const ModikeRegistry *reg)
{
  GPtrArray *all;

  g_return_val_if_fail (reg != NULL, NULL);
  all = g_ptr_array_new ();
  for (guint i = 0; i < reg->exchanges->len; i++)
    {
      const ExchangeReg *x = g_ptr_array_index (reg->exchanges, i);

      for (guint j = 0; j < x->rows->len; j++)
        g_ptr_array_add (all, &g_array_index (x->rows, ModikeFsmRow, j));
    }
  return all;
}

ModikePlugin *
modike_registry_exchange_owner (const ModikeRegistry *reg, guint8 exchange)
{
  const ExchangeReg *x;

  g_return_val_if_fail (reg != NULL, NULL);
  x = find_exchange (reg, exchange);
  return x != NULL ? x->owner : NULL;
}

gboolean
modike_registry_has_exchange (const ModikeRegistry *reg, guint8 exchange)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  return find_exchange (reg, exchange) != NULL;
}

gboolean
modike_registry_check_table (const ModikeRegistry *reg, GError **error)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  for (guint i = 0; i < reg->exchanges->len; i++)
    {
      const ExchangeReg *x = g_ptr_array_index (reg->exchanges, i);

      if (!check_rows (modike_plugin_get_name (x->owner), x->type, x->name,
                       (const ModikeFsmRow *) (gpointer) x->rows->data, x->rows->len, error))
        return FALSE;
    }
  return TRUE;
}

/* ---- Payload claims and builders ---- */

static const PayloadReg *
find_payload_claim (const ModikeRegistry *reg, guint8 type)
{
  for (guint i = 0; i < reg->payloads->len; i++)
    {
      const PayloadReg *p = g_ptr_array_index (reg->payloads, i);

      if (p->claim.type == type)
        return p;
    }
  return NULL;
}

gboolean
modike_register_payload (ModikePlugin *plugin, guint8 type, const ModikeMsgPoint *points, gsize n_points,
                         guint max_count, ModikePayloadFunc fn, gpointer user, GError **error)
{
  ModikeRegistry *reg;
  const PayloadReg *held;
  PayloadReg *p;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if ((held = find_payload_claim (reg, type)) != NULL)
    return CONFLICT (plugin, error, held->claim.owner, "payload type %u (%s)", type, payload_name (type));
  if (type == MODIKE_PL_NONE || points == NULL || n_points == 0 || max_count == 0 || fn == NULL)
    return INVALID (plugin, error, "claims payload type %u (%s) without points, count or handler",
                    type, payload_name (type));
  for (gsize i = 0; i < n_points; i++)
    {
      const ExchangeReg *x = find_exchange (reg, points[i].exchange);

      if (points[i].exchange == MODIKE_EX_NONE || points[i].msg_no == 0)
        return INVALID (plugin, error, "claims payload type %u (%s) at exchange %u message %u, which is no message",
                        type, payload_name (type), points[i].exchange, points[i].msg_no);
      for (gsize j = 0; j < i; j++)
        if (points[j].exchange == points[i].exchange && points[j].msg_no == points[i].msg_no)
          return INVALID (plugin, error, "claims payload type %u (%s) twice at exchange %u message %u",
                          type, payload_name (type), points[i].exchange, points[i].msg_no);
      for (guint j = 0; x != NULL && j < x->rows->len && modike_payload_bit (type) != MODIKE_PAYLOAD_BIT_OTHER; j++)
        {
          const ModikeFsmRow *r = &g_array_index (x->rows, ModikeFsmRow, j);

          if (r->msg_no == points[i].msg_no
              && ((r->required | r->optional) & (G_GUINT64_CONSTANT (1) << modike_payload_bit (type))) != 0)
            return refuse (plugin, MODIKE_REGISTRY_ERROR_CONFLICT, error,
                           "claims payload type %u (%s) at exchange %u (%s) message %u, which row '%s' of '%s' "
                           "already lists", type, payload_name (type), x->type, x->name, r->msg_no,
                           r->name != NULL ? r->name : "?", modike_plugin_get_name (x->owner));
        }
    }

  p = g_new0 (PayloadReg, 1);
  p->claim.owner = plugin;
  p->claim.type = type;
  p->claim.max_count = max_count;
  p->claim.fn = fn;
  p->claim.user = user;
  p->points = g_array_sized_new (FALSE, FALSE, sizeof (ModikeMsgPoint), n_points);
  g_array_append_vals (p->points, points, n_points);
  g_ptr_array_add (reg->payloads, p);
  rebuild_indexes (reg);
  return TRUE;
}

GPtrArray *
modike_registry_payloads_at (const ModikeRegistry *reg, guint8 exchange, guint8 msg_no)
{
  GPtrArray *slot;

  g_return_val_if_fail (reg != NULL, NULL);
  slot = g_hash_table_lookup (reg->payload_index, GUINT_TO_POINTER (point_key (exchange, msg_no)));
  return slot != NULL ? slot : reg->empty;
}

gboolean
modike_register_builder (ModikePlugin *plugin, ModikeMsgPoint point, ModikeBuildFunc fn, gpointer user,
                         GError **error)
{
  BuilderEntry *b;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (fn == NULL || point.exchange == MODIKE_EX_NONE || point.msg_no == 0)
    return INVALID (plugin, error, "registers a builder for exchange %u message %u without a handler or message",
                    point.exchange, point.msg_no);
  b = g_new0 (BuilderEntry, 1);
  b->b.owner = plugin;
  b->b.fn = fn;
  b->b.user = user;
  b->point = point;
  g_ptr_array_add (plugin->reg->builders, b);
  rebuild_indexes (plugin->reg);
  return TRUE;
}

GPtrArray *
modike_registry_builders_at (const ModikeRegistry *reg, guint8 exchange, guint8 msg_no)
{
  GPtrArray *slot;

  g_return_val_if_fail (reg != NULL, NULL);
  slot = g_hash_table_lookup (reg->builder_index, GUINT_TO_POINTER (point_key (exchange, msg_no)));
  return slot != NULL ? slot : reg->empty;
}

/* ---- Vendor IDs ---- */

/* Two VIDs collide when equal, or when one matches by prefix and the
 * other starts with it: a received VID would match both. */
static gboolean
vids_collide (const ModikeVendorIdReg *held, const guint8 *vid, gsize len, guint flags)
{
  gsize held_len;
  const guint8 *held_data = g_bytes_get_data (held->vid, &held_len);

  if (held_len == len && memcmp (held_data, vid, len) == 0)
    return TRUE;
  if ((held->flags & MODIKE_VID_PREFIX) && len >= held_len && memcmp (held_data, vid, held_len) == 0)
    return TRUE;
  if ((flags & MODIKE_VID_PREFIX) && held_len >= len && memcmp (held_data, vid, len) == 0)
    return TRUE;
  return FALSE;
}

gboolean
modike_register_vendor_id (ModikePlugin *plugin, const char *name, const guint8 *vid, gsize len, guint flags,
                           ModikeVendorIdFunc fn, gpointer user, GError **error)
{
  ModikeRegistry *reg;
  ModikeVendorIdReg *v;
  g_autofree char *vid_hex = NULL;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (vid == NULL || len == 0)
    return INVALID (plugin, error, "registers an empty vendor ID (%s)", name != NULL ? name : "unnamed");
  vid_hex = modike_hex (vid, len);
  if (name == NULL)
    name = vid_hex;
  if ((flags & ~(guint) (MODIKE_VID_SEND | MODIKE_VID_PREFIX)) != 0)
    return INVALID (plugin, error, "registers vendor ID %s (%s) with unknown flags 0x%x", vid_hex, name, flags);
  for (guint i = 0; i < reg->vids->len; i++)
    {
      const ModikeVendorIdReg *held = g_ptr_array_index (reg->vids, i);

      if (vids_collide (held, vid, len, flags))
        return CONFLICT (plugin, error, held->owner, "vendor ID %s (%s), overlapping '%s'", vid_hex, name, held->name);
    }

  v = g_new0 (ModikeVendorIdReg, 1);
  v->owner = plugin;
  v->name = g_strdup (name);
  v->vid = g_bytes_new (vid, len);
  v->flags = flags;
  v->fn = fn;
  v->user = user;
  g_ptr_array_add (reg->vids, v);
  return TRUE;
}

GPtrArray *
modike_registry_vendor_ids (const ModikeRegistry *reg)
{
  GPtrArray *out;

  g_return_val_if_fail (reg != NULL, NULL);
  /* Not g_ptr_array_copy: that would copy the free function too. */
  out = g_ptr_array_sized_new (reg->vids->len);
  for (guint i = 0; i < reg->vids->len; i++)
    g_ptr_array_add (out, g_ptr_array_index (reg->vids, i));
  return out;
}

const ModikeVendorIdReg *
modike_registry_match_vendor_id (const ModikeRegistry *reg, const guint8 *vid, gsize len)
{
  g_return_val_if_fail (reg != NULL, NULL);
  if (vid == NULL)
    return NULL;
  /* Colliding VIDs are refused at registration, so at most one entry
   * matches: the first hit is the answer. */
  for (guint i = 0; i < reg->vids->len; i++)
    {
      const ModikeVendorIdReg *v = g_ptr_array_index (reg->vids, i);
      gsize vlen;
      const guint8 *data = g_bytes_get_data (v->vid, &vlen);
      gboolean fits = vlen == len || ((v->flags & MODIKE_VID_PREFIX) && vlen < len);

      if (fits && memcmp (data, vid, vlen) == 0)
        return v;
    }
  return NULL;
}

/* ---- Notify handlers ---- */

static const NotifyReg *
find_notify (const ModikeRegistry *reg, guint16 type)
{
  for (guint i = 0; i < reg->notifies->len; i++)
    {
      const NotifyReg *n = g_ptr_array_index (reg->notifies, i);

      if (n->type == type)
        return n;
    }
  return NULL;
}

gboolean
modike_register_notify (ModikePlugin *plugin, guint16 type, ModikeNotifyFunc fn, gpointer user, GError **error)
{
  const NotifyReg *held;
  NotifyReg *n;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((held = find_notify (plugin->reg, type)) != NULL)
    return CONFLICT (plugin, error, held->owner, "notify type %u (%s)", type, notify_name (type));
  if (fn == NULL)
    return INVALID (plugin, error, "claims notify type %u (%s) without a handler", type, notify_name (type));
  n = g_new0 (NotifyReg, 1);
  n->owner = plugin;
  n->type = type;
  n->fn = fn;
  n->user = user;
  g_ptr_array_add (plugin->reg->notifies, n);
  return TRUE;
}

gboolean
modike_registry_notify (const ModikeRegistry *reg, guint16 type, ModikeNotifyFunc *fn, gpointer *user)
{
  const NotifyReg *n;

  g_return_val_if_fail (reg != NULL, FALSE);
  if ((n = find_notify (reg, type)) == NULL)
    return FALSE;
  if (fn != NULL)
    *fn = n->fn;
  if (user != NULL)
    *user = n->user;
  return TRUE;
}

/* ---- Config sections ---- */

/* The fragment must be one well-formed <element name="element"> pattern;
 * the RelaxNG compile itself happens in modike_config_check_plugins. */
static gboolean
fragment_ok (const char *element, const char *fragment)
{
  xmlDoc *doc;
  xmlNode *root;
  xmlChar *name = NULL;
  gboolean ok = FALSE;

  if (fragment == NULL)
    return FALSE;
  doc = xmlReadMemory (fragment, (int) MIN (strlen (fragment), (gsize) G_MAXINT), "fragment", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == NULL)
    return FALSE;
  root = xmlDocGetRootElement (doc);
  if (root != NULL && xmlStrcmp (root->name, BAD_CAST "element") == 0)
    {
      name = xmlGetProp (root, BAD_CAST "name");
      ok = name != NULL && xmlStrcmp (name, BAD_CAST element) == 0;
    }
  xmlFree (name);
  xmlFreeDoc (doc);
  return ok;
}

static const SectionReg *
find_section (const ModikeRegistry *reg, const char *element)
{
  for (guint i = 0; i < reg->sections->len; i++)
    {
      const SectionReg *s = g_ptr_array_index (reg->sections, i);

      if (g_strcmp0 (s->element, element) == 0)
        return s;
    }
  return NULL;
}

gboolean
modike_register_config_section (ModikePlugin *plugin, const char *element, const char *rng_fragment,
                                ModikeConfigFunc apply, gpointer user, GError **error)
{
  ModikeRegistry *reg;
  const SectionReg *held;
  SectionReg *s;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (element == NULL || xmlValidateNCName (BAD_CAST element, 0) != 0)
    return INVALID (plugin, error, "claims config section <%s>, which is not an element name",
                    element != NULL ? element : "(null)");
  if (g_strv_contains (core_sections, element))
    return CONFLICT (plugin, error, reg->core, "config section <%s>", element);
  if ((held = find_section (reg, element)) != NULL)
    return CONFLICT (plugin, error, held->owner, "config section <%s>", element);
  if (!fragment_ok (element, rng_fragment))
    return INVALID (plugin, error, "claims config section <%s> with a RelaxNG fragment that is not one "
                    "well-formed <element name=\"%s\"> pattern", element, element);

  s = g_new0 (SectionReg, 1);
  s->owner = plugin;
  s->element = g_strdup (element);
  s->fragment = g_strdup (rng_fragment);
  s->apply = apply;
  s->user = user;
  g_ptr_array_add (reg->sections, s);
  return TRUE;
}

GHashTable *
modike_registry_config_fragments (const ModikeRegistry *reg)
{
  GHashTable *h;

  g_return_val_if_fail (reg != NULL, NULL);
  h = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < reg->sections->len; i++)
    {
      const SectionReg *s = g_ptr_array_index (reg->sections, i);

      g_hash_table_insert (h, s->element, s->fragment);
    }
  return h;
}

gboolean
modike_registry_apply_config (ModikeRegistry *reg, const ModikeConfig *cfg, GError **error)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  for (guint i = 0; i < reg->sections->len; i++)
    {
      const SectionReg *s = g_ptr_array_index (reg->sections, i);
      xmlNode *node = cfg != NULL ? modike_config_section (cfg, s->element) : NULL;

      if (s->apply == NULL)
        continue;
      if (!s->apply (s->owner, node, s->user, error))
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                         "plugin '%s': config section <%s> rejected without a reason",
                         modike_plugin_get_name (s->owner), s->element);
          else
            g_prefix_error (error, "plugin '%s': config section <%s>: ", modike_plugin_get_name (s->owner),
                            s->element);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- Ports ---- */

gboolean
modike_register_port (ModikePlugin *plugin, guint16 port, guint flags, GError **error)
{
  ModikeRegistry *reg;
  PortReg *p;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (port == 0 || (flags & ~(guint) MODIKE_PORT_NON_ESP_MARKER) != 0)
    return INVALID (plugin, error, "claims port %u with flags 0x%x", port, flags);
  if (port == CORE_PORT)
    return CONFLICT (plugin, error, reg->core, "port %u", port);
  for (guint i = 0; i < reg->ports->len; i++)
    {
      const PortReg *held = g_ptr_array_index (reg->ports, i);

      if (held->port == port)
        return CONFLICT (plugin, error, held->owner, "port %u", port);
    }
  p = g_new0 (PortReg, 1);
  p->owner = plugin;
  p->port = port;
  p->flags = flags;
  g_ptr_array_add (reg->ports, p);
  return TRUE;
}

GArray *
modike_registry_ports (const ModikeRegistry *reg)
{
  GArray *out;

  g_return_val_if_fail (reg != NULL, NULL);
  out = g_array_sized_new (FALSE, FALSE, sizeof (guint32), reg->ports->len);
  for (guint i = 0; i < reg->ports->len; i++)
    {
      const PortReg *p = g_ptr_array_index (reg->ports, i);
      guint32 v = (guint32) p->port | (guint32) p->flags << 16;

      g_array_append_val (out, v);
    }
  return out;
}

/* ---- Encapsulation hook, datapath, OS adapter ---- */

static gboolean
claim_single (ModikePlugin *plugin, SingleReg *slot, const char *what, gconstpointer ops, gsize ops_size,
              gpointer user, GError **error)
{
  if (slot->owner != NULL)
    return CONFLICT (plugin, error, slot->owner, "the %s", what);
  if (ops == NULL)
    return INVALID (plugin, error, "registers the %s without operations", what);
  slot->owner = plugin;
  slot->ops = g_memdup2 (ops, ops_size);
  slot->user = user;
  return TRUE;
}

/* A plugin built for an older minor passed a shorter struct (known bytes
 * of full): the ops it does not know are NULL in our copy. */
static gboolean
claim_grown (ModikePlugin *plugin, SingleReg *slot, const char *what, gconstpointer ops, gsize full, gsize known,
             gpointer user, GError **error)
{
  gpointer copy;

  if (!claim_single (plugin, slot, what, ops, known, user, error))
    return FALSE;
  if (known < full)
    {
      copy = g_malloc0 (full);
      memcpy (copy, slot->ops, known);
      g_free (slot->ops);
      slot->ops = copy;
    }
  return TRUE;
}

gboolean
modike_register_encap (ModikePlugin *plugin, const ModikeEncapOps *ops, gpointer user, GError **error)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (ops != NULL && (ops->encap_out == NULL || ops->encap_in == NULL))
    return INVALID (plugin, error, "registers the encapsulation hook without %s",
                    ops->encap_out == NULL ? "encap_out" : "encap_in");
  return claim_single (plugin, &plugin->reg->encap, "encapsulation hook", ops, sizeof *ops, user, error);
}

const ModikeEncapOps *
modike_registry_encap (const ModikeRegistry *reg, gpointer *user)
{
  g_return_val_if_fail (reg != NULL, NULL);
  if (user != NULL)
    *user = reg->encap.user;
  return reg->encap.ops;
}

gboolean
modike_register_datapath (ModikePlugin *plugin, const ModikeDatapathOps *ops, gpointer user, GError **error)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (ops != NULL && plugin->desc->abi_minor >= 4 && (ops->policy_add == NULL) != (ops->policy_del == NULL))
    return INVALID (plugin, error, "registers the datapath with only one of %s", "policy_add and policy_del");
  if (ops != NULL && plugin->desc->abi_minor >= 4 && (ops->sa_del_sa == NULL) != (ops->sa_stats_sa == NULL))
    return INVALID (plugin, error, "registers the datapath with only one of %s", "sa_del_sa and sa_stats_sa");
  /* A plugin built before 1.3 passed a struct without sa_move, before 1.4
   * one without policy_add, policy_del, sa_del_sa and sa_stats_sa. */
  return claim_grown (plugin, &plugin->reg->datapath, "datapath", ops, sizeof *ops,
                      plugin->desc->abi_minor >= 4   ? sizeof *ops
                      : plugin->desc->abi_minor >= 3 ? G_STRUCT_OFFSET (ModikeDatapathOps, policy_add)
                                                     : G_STRUCT_OFFSET (ModikeDatapathOps, sa_move),
                      user, error);
}

const ModikeDatapathOps *
modike_registry_datapath (const ModikeRegistry *reg, gpointer *user)
{
  g_return_val_if_fail (reg != NULL, NULL);
  if (user != NULL)
    *user = reg->datapath.user;
  return reg->datapath.ops;
}

gboolean
modike_register_os_adapter (ModikePlugin *plugin, const ModikeOsAdapterOps *ops, gpointer user, GError **error)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return claim_grown (plugin, &plugin->reg->os_adapter, "OS adapter", ops, sizeof *ops,
                      plugin->desc->abi_minor >= 2 ? sizeof *ops : G_STRUCT_OFFSET (ModikeOsAdapterOps, set_dns),
                      user, error);
}

const ModikeOsAdapterOps *
modike_registry_os_adapter (const ModikeRegistry *reg, gpointer *user)
{
  g_return_val_if_fail (reg != NULL, NULL);
  if (user != NULL)
    *user = reg->os_adapter.user;
  return reg->os_adapter.ops;
}

/* ---- Events ---- */

gboolean
modike_register_event (ModikePlugin *plugin, ModikeEventType ev, ModikeEventFunc fn, gpointer user,
                       GError **error)
{
  EventReg *e;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (fn == NULL || (guint) ev > MODIKE_EVENT_P2_FAILED)
    return INVALID (plugin, error, "registers event %u without a handler or with an unknown event", (guint) ev);
  e = g_new0 (EventReg, 1);
  e->owner = plugin;
  e->ev = ev;
  e->fn = fn;
  e->user = user;
  g_ptr_array_add (plugin->reg->events, e);
  return TRUE;
}

void
modike_registry_emit (const ModikeRegistry *reg, ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child)
{
  g_return_if_fail (reg != NULL);
  for (guint i = 0; i < reg->events->len; i++)
    {
      const EventReg *e = g_ptr_array_index (reg->events, i);

      if (e->ev == ev)
        e->fn (ev, sa, child, e->user);
    }
}

gboolean
modike_register_engine_start (ModikePlugin *plugin, ModikeEngineStartFunc fn, gpointer user, GError **error)
{
  HookReg *h;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (fn == NULL)
    return INVALID (plugin, error, "registers an engine start hook %s", "without a function");
  h = g_new0 (HookReg, 1);
  h->owner = plugin;
  h->fn = fn;
  h->user = user;
  g_ptr_array_add (plugin->reg->start_hooks, h);
  return TRUE;
}

void
modike_registry_emit_start (const ModikeRegistry *reg, ModikeIke *ike)
{
  g_return_if_fail (reg != NULL);
  for (guint i = 0; i < reg->start_hooks->len; i++)
    {
      const HookReg *h = g_ptr_array_index (reg->start_hooks, i);

      ((ModikeEngineStartFunc) h->fn) (ike, h->user);
    }
}

/* ---- Phase 1 authentication methods ---- */

/* The methods of RFC 2409 (pre-shared key, DSS and RSA signatures, RSA
 * encryption and its revised form) are the core's to implement. */
#define CORE_AUTH_LAST 5

static const char *
auth_base_name (guint16 base)
{
  return base == MODIKE_AUTH_PSK ? "psk" : base == MODIKE_AUTH_RSA_SIG ? "rsa-sig"
         : base == MODIKE_AUTH_HYBRID_RSA ? "hybrid-rsa" : "?";
}

gboolean
modike_register_auth_method (ModikePlugin *plugin, guint16 method, const char *name, guint16 base,
                             ModikeRole authenticated, ModikeAuthMethodFunc established, gpointer user,
                             GError **error)
{
  ModikeRegistry *reg;
  const ModikeAuthMethodReg *held;
  ModikeAuthMethodReg *m;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (name == NULL || *name == '\0' || strlen (name) > 64 || strspn (name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen (name))
    return INVALID (plugin, error, "registers auth method %u with a bad name '%s' (a-z 0-9 - _ ., at most 64)", method,
                    name != NULL ? name : "(null)");
  if ((held = modike_registry_auth_method (reg, method)) != NULL)
    return CONFLICT (plugin, error, held->owner, "auth method %u (%s)", method, held->name);
  if ((held = modike_registry_auth_method_named (reg, name)) != NULL)
    return CONFLICT (plugin, error, held->owner, "auth method name '%s' (method %u)", name, held->method);
  if (plugin != reg->core && (method == 0 || method <= CORE_AUTH_LAST || strcmp (name, "psk") == 0))
    return CONFLICT (plugin, error, reg->core, "auth method %u (%s)", method, name);
  if (base != MODIKE_AUTH_PSK && base != MODIKE_AUTH_RSA_SIG && base != MODIKE_AUTH_HYBRID_RSA)
    return INVALID (plugin, error,
                    "registers auth method %u (%s) on base method %u (psk 1, rsa-sig 3 or MODIKE_AUTH_HYBRID_RSA)",
                    method, name, base);
  if (authenticated != 0 && authenticated != MODIKE_ROLE_INITIATOR && authenticated != MODIKE_ROLE_RESPONDER)
    return INVALID (plugin, error, "registers auth method %u (%s) for role %u", method, name, (guint) authenticated);
  /* Hybrid: the authenticated role is the client, the side that hashes. */
  if (base == MODIKE_AUTH_HYBRID_RSA && authenticated == 0)
    return INVALID (plugin, error, "registers hybrid auth method %u (%s) without the role of its client", method,
                    name);

  m = g_new0 (ModikeAuthMethodReg, 1);
  m->owner = plugin;
  m->method = method;
  m->name = g_strdup (name);
  m->base = base;
  m->authenticated = authenticated;
  m->fn = established;
  m->user = user;
  g_ptr_array_add (reg->auth_methods, m);
  return TRUE;
}

const ModikeAuthMethodReg *
modike_registry_auth_method (const ModikeRegistry *reg, guint16 method)
{
  g_return_val_if_fail (reg != NULL, NULL);
  for (guint i = 0; i < reg->auth_methods->len; i++)
    {
      const ModikeAuthMethodReg *m = g_ptr_array_index (reg->auth_methods, i);

      if (m->method == method)
        return m;
    }
  return NULL;
}

const ModikeAuthMethodReg *
modike_registry_auth_method_named (const ModikeRegistry *reg, const char *name)
{
  g_return_val_if_fail (reg != NULL, NULL);
  for (guint i = 0; i < reg->auth_methods->len; i++)
    {
      const ModikeAuthMethodReg *m = g_ptr_array_index (reg->auth_methods, i);

      if (g_strcmp0 (m->name, name) == 0)
        return m;
    }
  return NULL;
}

static gboolean
lookup_auth (const char *name, guint16 *method, guint16 *base, gpointer user)
{
  const ModikeAuthMethodReg *m = modike_registry_auth_method_named (user, name);

  if (m == NULL)
    return FALSE;
  *method = m->method;
  *base = m->base;
  return TRUE;
}

gboolean
modike_registry_resolve_auth (const ModikeRegistry *reg, ModikeConfig *cfg, GError **error)
{
  g_return_val_if_fail (reg != NULL, FALSE);
  return modike_config_resolve_auth (cfg, lookup_auth, (gpointer) reg, error);
}

/* ---- Configuration attributes ---- */

const ModikeAttrClaim *
modike_registry_attribute (const ModikeRegistry *reg, guint16 type)
{
  g_return_val_if_fail (reg != NULL, NULL);
  for (guint i = 0; i < reg->attributes->len; i++)
    {
      const ModikeAttrClaim *c = g_ptr_array_index (reg->attributes, i);

      if (c->type == type)
        return c;
    }
  return NULL;
}

gboolean
modike_register_attributes (ModikePlugin *plugin, const ModikeAttrSpec *specs, gsize n_specs, ModikeAttrFunc fn,
                            gpointer user, GError **error)
{
  ModikeRegistry *reg;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;

  if (specs == NULL || n_specs == 0 || fn == NULL)
    return INVALID (plugin, error, "claims %" G_GSIZE_FORMAT " attribute types %s", specs != NULL ? n_specs : 0,
                    fn == NULL ? "without a handler" : "(none given)");
  /* All checked before any is taken: a refused call leaves nothing. */
  for (gsize i = 0; i < n_specs; i++)
    {
      const ModikeAttrSpec *sp = &specs[i];
      const char *sname = sp->name != NULL ? sp->name : "unnamed";
      const ModikeAttrClaim *held = modike_registry_attribute (reg, sp->type);

      if (held != NULL)
        return CONFLICT (plugin, error, held->owner, "attribute type %u (%s)", sp->type, held->name);
      if (sp->type == 0 || (sp->type & MODIKE_ATTR_AF) != 0)
        return INVALID (plugin, error, "claims attribute type %u (%s): types are 1..32767", sp->type, sname);
      if ((guint) sp->format > MODIKE_ATTR_FMT_U16_LIST)
        return INVALID (plugin, error, "claims attribute type %u (%s) with unknown format %u", sp->type, sname,
                        (guint) sp->format);
      for (gsize k = 0; k < i; k++)
        if (specs[k].type == sp->type)
          return INVALID (plugin, error, "claims attribute type %u (%s) twice in one call", sp->type, sname);
    }
  for (gsize i = 0; i < n_specs; i++)
    {
      ModikeAttrClaim *c = g_new0 (ModikeAttrClaim, 1);

      c->owner = plugin;
      c->type = specs[i].type;
      c->format = specs[i].format;
      c->name = g_strdup (specs[i].name != NULL ? specs[i].name : "unnamed");
      c->fn = fn;
      c->user = user;
      g_ptr_array_add (reg->attributes, c);
    }
  return TRUE;
}

/* ---- Check only ---- */

void
modike_registry_set_check_only (ModikeRegistry *reg, gboolean check_only)
{
  g_return_if_fail (reg != NULL);
  reg->check_only = check_only;
}

gboolean
modike_plugin_is_check_only (const ModikePlugin *plugin)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  return plugin->reg->check_only;
}

/* ---- Transaction exchange ---- */

typedef struct {
  ModikePlugin *owner;
  ModikeTransactionOps ops;
} TransactionReg;
G_STATIC_ASSERT (G_STRUCT_OFFSET (TransactionReg, owner) == 0);

const ModikeTransactionOps *
modike_registry_transaction (const ModikeRegistry *reg, const ModikePlugin *plugin)
{
  g_return_val_if_fail (reg != NULL, NULL);
  for (guint i = 0; i < reg->transactions->len; i++)
    {
      const TransactionReg *t = g_ptr_array_index (reg->transactions, i);

      if (t->owner == plugin)
        return &t->ops;
    }
  return NULL;
}

gboolean
modike_register_transaction (ModikePlugin *plugin, const ModikeTransactionOps *ops, GError **error)
{
  TransactionReg *t;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (ops == NULL || (ops->request == NULL && ops->initiate == NULL))
    return INVALID (plugin, error, "registers for the %s exchange without handlers", "transaction");
  if ((ops->initiate == NULL) != (ops->answer == NULL))
    return INVALID (plugin, error, "registers for the transaction exchange with %s but not %s",
                    ops->initiate != NULL ? "initiate" : "answer", ops->initiate != NULL ? "answer" : "initiate");
  if (modike_registry_transaction (plugin->reg, plugin) != NULL)
    return INVALID (plugin, error, "registers for the %s exchange twice", "transaction");
  t = g_new0 (TransactionReg, 1);
  t->owner = plugin;
  t->ops = *ops;
  g_ptr_array_add (plugin->reg->transactions, t);
  return TRUE;
}

/* ---- Description ---- */

static const char *
single_name (const char *name)
{
  return name != NULL ? name : "unnamed";
}

char *
modike_registry_describe (const ModikeRegistry *reg)
{
  GString *s;

  g_return_val_if_fail (reg != NULL, NULL);
  s = g_string_new (NULL);
  for (guint i = 0; i < reg->plugins->len; i++)
    g_string_append_printf (s, "plugin %s\n", modike_plugin_get_name (g_ptr_array_index (reg->plugins, i)));
  for (guint i = 0; i < reg->exchanges->len; i++)
    {
      const ExchangeReg *x = g_ptr_array_index (reg->exchanges, i);

      g_string_append_printf (s, "exchange %u (%s) by %s\n", x->type, x->name, modike_plugin_get_name (x->owner));
      for (guint j = 0; j < x->rows->len; j++)
        {
          const ModikeFsmRow *r = &g_array_index (x->rows, ModikeFsmRow, j);

          g_string_append_printf (s, "  row %s: from %u msg %u role %u flags 0x%x next %u\n",
                                  r->name != NULL ? r->name : "?", r->from, r->msg_no, r->role, r->flags, r->next);
        }
    }
  for (guint i = 0; i < reg->payloads->len; i++)
    {
      const PayloadReg *p = g_ptr_array_index (reg->payloads, i);

      g_string_append_printf (s, "payload %u (%s) max %u by %s at", p->claim.type, payload_name (p->claim.type),
                              p->claim.max_count, modike_plugin_get_name (p->claim.owner));
      for (guint j = 0; j < p->points->len; j++)
        {
          const ModikeMsgPoint *pt = &g_array_index (p->points, ModikeMsgPoint, j);

          g_string_append_printf (s, " %u/%u", pt->exchange, pt->msg_no);
        }
      g_string_append_c (s, '\n');
    }
  for (guint i = 0; i < reg->builders->len; i++)
    {
      const BuilderEntry *b = g_ptr_array_index (reg->builders, i);

      g_string_append_printf (s, "builder %u/%u by %s\n", b->point.exchange, b->point.msg_no,
                              modike_plugin_get_name (b->b.owner));
    }
  for (guint i = 0; i < reg->vids->len; i++)
    {
      const ModikeVendorIdReg *v = g_ptr_array_index (reg->vids, i);
      gsize len;
      const guint8 *data = g_bytes_get_data (v->vid, &len);
      g_autofree char *h = modike_hex (data, len);

      g_string_append_printf (s, "vendor-id %s (%s) flags 0x%x by %s\n", h, v->name, v->flags,
                              modike_plugin_get_name (v->owner));
    }
  for (guint i = 0; i < reg->notifies->len; i++)
    {
      const NotifyReg *n = g_ptr_array_index (reg->notifies, i);

      g_string_append_printf (s, "notify %u by %s\n", n->type, modike_plugin_get_name (n->owner));
    }
  for (guint i = 0; i < reg->sections->len; i++)
    {
      const SectionReg *c = g_ptr_array_index (reg->sections, i);

      g_string_append_printf (s, "config-section <%s> by %s\n", c->element, modike_plugin_get_name (c->owner));
    }
  for (guint i = 0; i < reg->ports->len; i++)
    {
      const PortReg *p = g_ptr_array_index (reg->ports, i);

      g_string_append_printf (s, "port %u flags 0x%x by %s\n", p->port, p->flags, modike_plugin_get_name (p->owner));
    }
  for (guint i = 0; i < reg->events->len; i++)
    {
      const EventReg *e = g_ptr_array_index (reg->events, i);

      g_string_append_printf (s, "event %u by %s\n", e->ev, modike_plugin_get_name (e->owner));
    }
  for (guint i = 0; i < reg->auth_methods->len; i++)
    {
      const ModikeAuthMethodReg *m = g_ptr_array_index (reg->auth_methods, i);

      g_string_append_printf (s, "auth-method %u (%s) base %s role %u by %s\n", m->method, m->name,
                              auth_base_name (m->base), (guint) m->authenticated, modike_plugin_get_name (m->owner));
    }
  for (guint i = 0; i < reg->attributes->len; i++)
    {
      const ModikeAttrClaim *c = g_ptr_array_index (reg->attributes, i);

      g_string_append_printf (s, "attribute %u (%s) format %u by %s\n", c->type, c->name, (guint) c->format,
                              modike_plugin_get_name (c->owner));
    }
  for (guint i = 0; i < reg->transactions->len; i++)
    {
      const TransactionReg *t = g_ptr_array_index (reg->transactions, i);

      g_string_append_printf (s, "transaction by %s\n", modike_plugin_get_name (t->owner));
    }
  for (guint i = 0; i < reg->rx_hooks->len; i++)
    {
      const HookReg *h = g_ptr_array_index (reg->rx_hooks, i);

      g_string_append_printf (s, "rx-hook by %s\n", modike_plugin_get_name (h->owner));
    }
  if (reg->tx_hook.owner != NULL)
    g_string_append_printf (s, "tx-hook by %s\n", modike_plugin_get_name (reg->tx_hook.owner));
  if (reg->encap.owner != NULL)
    g_string_append_printf (s, "encap by %s\n", modike_plugin_get_name (reg->encap.owner));
  if (reg->datapath.owner != NULL)
    g_string_append_printf (s, "datapath %s by %s\n", single_name (((ModikeDatapathOps *) reg->datapath.ops)->name),
                            modike_plugin_get_name (reg->datapath.owner));
  if (reg->os_adapter.owner != NULL)
    g_string_append_printf (s, "os-adapter %s by %s\n", single_name (((ModikeOsAdapterOps *) reg->os_adapter.ops)->name),
                            modike_plugin_get_name (reg->os_adapter.owner));
  return g_string_free (s, FALSE);
}

/* ---- Packet-path hooks ---- */

/* Appends a hook of plugin to list (rx hooks, counters). */
static gboolean
hook_add (ModikePlugin *plugin, GPtrArray *list, gpointer fn, gpointer user, const char *what, GError **error)
{
  HookReg *h;

  if (fn == NULL)
    return INVALID (plugin, error, "registers %s without a function", what);
  h = g_new0 (HookReg, 1);
  h->owner = plugin;
  h->fn = fn;
  h->user = user;
  g_ptr_array_add (list, h);
  return TRUE;
}

gboolean
modike_register_rx_hook (ModikePlugin *plugin, ModikeRxHookFunc fn, gpointer user, GError **error)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return hook_add (plugin, plugin->reg->rx_hooks, (gpointer) fn, user, "a receive hook", error);
}

/* ---- counters ---- */

struct _ModikeCounters {
  GArray *out;             /* ModikeCounter */
  const char *plugin;
};

gboolean
modike_register_counters (ModikePlugin *plugin, ModikeCountersFunc fn, gpointer user, GError **error)
{
  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return hook_add (plugin, plugin->reg->counters, (gpointer) fn, user, "counters", error);
}

void
modike_counters_add (ModikeCounters *out, const char *name, guint64 value)
{
  ModikeCounter c = { out->plugin, g_strdup (name), value };

  g_return_if_fail (name != NULL);
  g_array_append_val (out->out, c);
}

static void
counter_clear (gpointer p)
{
  g_free (((ModikeCounter *) p)->name);
}

GArray *
modike_registry_counters (const ModikeRegistry *reg)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (ModikeCounter));

  g_array_set_clear_func (out, counter_clear);
  for (guint i = 0; i < reg->counters->len; i++)
    {
      const HookReg *h = g_ptr_array_index (reg->counters, i);
      ModikeCounters c = { out, modike_plugin_get_name (h->owner) };

      ((ModikeCountersFunc) h->fn) (&c, h->user);
    }
  return out;
}

guint
modike_registry_rx_hooks (const ModikeRegistry *reg)
{
  g_return_val_if_fail (reg != NULL, 0);
  return reg->rx_hooks->len;
}

ModikeRxHookFunc
modike_registry_rx_hook (const ModikeRegistry *reg, guint i, gpointer *user)
{
  const HookReg *h;

  g_return_val_if_fail (reg != NULL && i < reg->rx_hooks->len, NULL);
  h = g_ptr_array_index (reg->rx_hooks, i);
  if (user != NULL)
    *user = h->user;
  return (ModikeRxHookFunc) h->fn;
}

gboolean
modike_register_tx_hook (ModikePlugin *plugin, ModikeTxHookFunc fn, gpointer user, GError **error)
{
  ModikeRegistry *reg;

  g_return_val_if_fail (plugin != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = plugin->reg;
  if (reg->tx_hook.owner != NULL)
    return CONFLICT (plugin, error, reg->tx_hook.owner, "the %s", "transmit hook");
  if (fn == NULL)
    return INVALID (plugin, error, "registers a %s without a function", "transmit hook");
  reg->tx_hook.owner = plugin;
  reg->tx_hook.fn = (gpointer) fn;
  reg->tx_hook.user = user;
  return TRUE;
}

ModikeTxHookFunc
modike_registry_tx_hook (const ModikeRegistry *reg, gpointer *user)
{
  g_return_val_if_fail (reg != NULL, NULL);
  if (user != NULL)
    *user = reg->tx_hook.user;
  return (ModikeTxHookFunc) reg->tx_hook.fn;
}
